#!/usr/bin/env python3
"""Runs the carriers' official Python clients, unmodified, against the simfleet simulator, for
the tests (tests/official_clients.rs). Prints what each operation returned as JSON.

    official_clients.py emnify    # env: EMNIFY_SDK_API_ENDPOINT_URL, EMNIFY_APP_TOKEN, SIM_ADMIN_URL
    official_clients.py hologram  # env: HOLOGRAM_BASE_URL, HOLOGRAM_API_KEY; ICCIDs on stdin
    official_clients.py soracom   # env: SORACOM_ENDPOINT, SORACOM_AUTH_KEY_ID, SORACOM_AUTH_KEY

Only configuration is set from outside: emnify-sdk reads its base URL from
EMNIFY_SDK_API_ENDPOINT_URL, and hologram-python's base URL is its module's
HOLOGRAM_REST_API_BASEURL. The simulator's clock is moved through its admin API (not part of
either client) so that asynchronous changes land.
"""
import json
import os
import sys

import requests


def advance(seconds):
    """Moves the simulator's virtual clock (its admin API)."""
    answer = requests.post(f"{os.environ['SIM_ADMIN_URL']}/clock/advance", json={"seconds": seconds})
    answer.raise_for_status()


def emnify_report():
    from emnify import EMnify
    from emnify.modules.device.models import FilterDeviceModel

    client = EMnify(os.environ["EMNIFY_APP_TOKEN"])
    devices = client.devices
    report = {}

    listed = list(devices.get_devices_list())
    report["devices"] = [d.id for d in listed]
    report["device_tags"] = {str(d.id): d.tags for d in listed[:3]}

    tag_filter = FilterDeviceModel(tags="cold-chain")
    tagged = list(devices.get_devices_list(filter_model=tag_filter))
    report["tagged"] = [d.id for d in tagged]
    report["tagged_tags"] = sorted({d.tags for d in tagged})

    one = devices.retrieve_device(1001)
    report["retrieved"] = {"id": one.id, "status": int(one.status.id), "sim": one.sim.id}

    devices.change_status(1001, disable=True)
    advance(60)
    disabled = devices.retrieve_device(1001)
    report["disabled"] = {"status": int(disabled.status.id), "sim_status": int(disabled.sim.status.id)}

    devices.change_status(1001, enable=True)
    advance(60)
    enabled = devices.retrieve_device(1001)
    report["enabled"] = {"status": int(enabled.status.id), "sim_status": int(enabled.sim.status.id)}

    sims = list(client.sim.get_sim_list())
    report["sims"] = len(sims)
    report["sim_endpoints"] = [s.device.id for s in sims[:2]]
    sim = client.sim.retrieve_sim(700001)
    report["retrieved_sim"] = {"id": sim.id, "iccid": str(sim.iccid), "status": sim.status.id}

    events = list(devices.get_device_events_list(1001))
    report["events"] = [
        {"type": int(e.event_type.id), "description": e.event_type.description} for e in events
    ]
    return report


def hologram_report():
    from Hologram.Api.Api import Api

    # The module that defines Api (the package re-exports the class under the same name).
    sys.modules[Api.__module__].HOLOGRAM_REST_API_BASEURL = os.environ["HOLOGRAM_BASE_URL"]
    api = Api(apikey=os.environ["HOLOGRAM_API_KEY"])
    states = {}
    for iccid in sys.stdin.read().split():
        success, state = api.getSIMState(iccid)
        states[iccid] = {"success": success, "state": state}
    return {"states": states}


def soracom_report():
    """soracom-api 0.0.2 (generated from Soracom's spec): auth, SIM listing with its paging
    headers, a SIM, state changes and expiry. It predates the Batch API."""
    import soracom_api
    from soracom_api.api.auth_api import AuthApi
    from soracom_api.api.sim_api import SimApi
    from soracom_api.model.auth_request import AuthRequest
    from soracom_api.model.expiry_time import ExpiryTime

    config = soracom_api.Configuration(host=os.environ["SORACOM_ENDPOINT"] + "/v1")
    client = soracom_api.ApiClient(config)
    auth = AuthApi(client).auth(
        AuthRequest(auth_key_id=os.environ["SORACOM_AUTH_KEY_ID"], auth_key=os.environ["SORACOM_AUTH_KEY"])
    )
    config.api_key = {"api_key": auth.api_key, "api_token": auth.token}
    sims = SimApi(client)
    report = {"operator": auth.operator_id}

    first, _, headers = sims.list_sims(limit=2, _return_http_data_only=False)
    report["first_page"] = [s.sim_id for s in first]
    report["next_key"] = headers.get("x-soracom-next-key")
    second = sims.list_sims(limit=2, last_evaluated_key=report["next_key"])
    report["second_page"] = [s.sim_id for s in second]

    one = first[0]
    report["profiles"] = {iccid: sorted(p.subscribers.keys()) for iccid, p in one.profiles.items()}
    report["tags"] = one.tags.to_dict()
    deactivated = sims.deactivate_sim(one.sim_id)
    report["deactivated"] = deactivated.status
    report["read_back"] = sims.get_sim(one.sim_id).status
    report["activated"] = sims.activate_sim(one.sim_id).status
    report["suspended"] = sims.suspend_sim(first[1].sim_id).status
    expiry = sims.set_sim_expiry_time(
        one.sim_id, ExpiryTime(expiry_time=1893456000000, expiry_action="deactivate")
    )
    report["expiry"] = {"time": expiry.expiry_time, "action": expiry.expiry_action}
    try:
        sims.get_sim("8942310999999999999")
        report["missing"] = None
    except soracom_api.ApiException as error:
        report["missing"] = {"status": error.status, "body": json.loads(error.body)}
    return report


def main():
    which = sys.argv[1]
    reports = {"emnify": emnify_report, "hologram": hologram_report, "soracom": soracom_report}
    report = reports[which]()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
