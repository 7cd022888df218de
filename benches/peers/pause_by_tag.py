"""What a careful user writes by hand instead of simfleet: pause every SIM with one of some
tags, against the carrier's REST API, with `requests`.

    pause_by_tag.py hologram BASE_URL API_KEY TAG...      # BASE_URL ends in /api/1
    pause_by_tag.py emnify   BASE_URL APP_TOKEN TAG...    # BASE_URL ends in /api
    pause_by_tag.py soracom  ENDPOINT ID:SECRET NAME=VALUE...  # ENDPOINT without /v1

1. list the SIMs by tag, page by page (the largest page each carrier serves);
2. pause them in chunks of the carrier's largest bulk action (Hologram 10,000 devices per
   POST /devices/batch/state; emnify 2,000 endpoints per PATCH /v2/endpoint/multi; Soracom
   10,000 tasks per batch job, one job at a time, each job's status read once a second
   until it is final);
3. poll (list again, once a second) until every SIM shows the state.

Prints one JSON line: {"sims": N, "seconds": wall time}. The benches count its requests at
the simulator (benches/side_by_side.rs).
"""

import json
import sys
import time

import requests


def hologram(base, key, tags):
    session = requests.Session()
    session.auth = ("apikey", key)

    def listing():
        devices = {}
        for tag in tags:
            after = None
            while True:
                params = {"tagname": tag, "limit": 1000}
                if after is not None:
                    params["startafter"] = after
                answer = session.get(f"{base}/devices", params=params)
                answer.raise_for_status()
                body = answer.json()
                for device in body["data"]:
                    devices[device["id"]] = device["links"]["cellular"][0]["state"]
                if not body.get("continues"):
                    break
                after = body["lastid"]
        return devices

    devices = listing()
    to_pause = sorted(d for d, state in devices.items() if state == "LIVE")
    for i in range(0, len(to_pause), 10_000):
        answer = session.post(
            f"{base}/devices/batch/state",
            json={"deviceids": to_pause[i : i + 10_000], "state": "pause"},
        )
        answer.raise_for_status()
    while True:
        states = listing()
        if all(states[d] == "PAUSED-USER" for d in to_pause):
            break
        time.sleep(1)
    return len(devices)


def emnify(base, token, tags):
    session = requests.Session()
    answer = session.post(f"{base}/v1/authenticate", json={"application_token": token})
    answer.raise_for_status()
    session.headers["Authorization"] = "Bearer " + answer.json()["auth_token"]

    def listing():
        endpoints = {}
        for tag in tags:
            page = 1
            while True:
                answer = session.get(
                    f"{base}/v1/endpoint",
                    params={"q": f"tags:{tag}", "per_page": 1000, "page": page},
                )
                answer.raise_for_status()
                for endpoint in answer.json():
                    endpoints[endpoint["id"]] = endpoint["status"]["id"]
                if page >= int(answer.headers["X-Total-Pages"]):
                    break
                page += 1
        return endpoints

    endpoints = listing()
    to_pause = sorted(e for e, status in endpoints.items() if status == 0)
    for i in range(0, len(to_pause), 2_000):
        items = [{"id": e, "status": {"id": 1}} for e in to_pause[i : i + 2_000]]
        answer = session.patch(f"{base}/v2/endpoint/multi", json=items)
        answer.raise_for_status()
    while True:
        statuses = listing()
        if all(statuses[e] == 1 for e in to_pause):
            break
        time.sleep(1)
    return len(endpoints)


def soracom(base, credential, tags):
    key_id, key = credential.split(":", 1)
    session = requests.Session()
    answer = session.post(f"{base}/v1/auth", json={"authKeyId": key_id, "authKey": key})
    answer.raise_for_status()
    auth = answer.json()
    session.headers["X-Soracom-API-Key"] = auth["apiKey"]
    session.headers["X-Soracom-Token"] = auth["token"]

    def listing():
        sims = {}
        for tag in tags:
            name, value = tag.split("=", 1)
            after = None
            while True:
                params = {"tag_name": name, "tag_value": value, "limit": 100}
                if after:
                    params["last_evaluated_key"] = after
                answer = session.get(f"{base}/v1/subscribers", params=params)
                answer.raise_for_status()
                for subscriber in answer.json():
                    sims[subscriber["simId"]] = subscriber["status"]
                after = answer.headers.get("x-soracom-next-key")
                if not after:
                    break
        return sims

    sims = listing()
    to_pause = sorted(s for s, status in sims.items() if status == "active")
    answer = session.post(f"{base}/v1/batch_groups", json={"batchGroupName": "pause-by-tag"})
    answer.raise_for_status()
    group = answer.json()["batchGroupId"]
    for i in range(0, len(to_pause), 10_000):
        tasks = [
            {"request": {"path": f"/v1/sims/{s}/deactivate", "method": "POST"}}
            for s in to_pause[i : i + 10_000]
        ]
        answer = session.post(f"{base}/v1/batch_groups/{group}/jobs", json={"tasks": tasks})
        answer.raise_for_status()
        job = answer.json()["jobId"]
        while True:
            answer = session.get(f"{base}/v1/batch_groups/{group}/jobs/{job}")
            answer.raise_for_status()
            if answer.json()["status"] in ("completed", "failed", "aborted"):
                break
            time.sleep(1)
    while True:
        statuses = listing()
        if all(statuses[s] == "inactive" for s in to_pause):
            break
        time.sleep(1)
    return len(sims)


def main():
    carrier, base, credential, *tags = sys.argv[1:]
    started = time.monotonic()
    carriers = {"hologram": hologram, "emnify": emnify, "soracom": soracom}
    sims = carriers[carrier](base, credential, tags)
    print(json.dumps({"sims": sims, "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    main()
