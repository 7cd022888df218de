//! Observing a selection on Soracom: by tag through `/v1/subscribers` (keyset pages,
//! deduplicated by SIM id), and listed SIMs through single reads (ICCIDs paired with SIM ids by
//! the search) or the full listing.

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::*;

impl SoracomClient {
    /// The pages of a keyset-paged listing, following `x-soracom-next-key` until it is
    /// missing or empty (a short page is not the end).
    pub(super) fn pages<'a>(
        &'a self,
        make: impl Fn(Option<&str>) -> Call<'static> + Send + Sync + 'a,
    ) -> BoxStream<'a, Result<Reply, CarrierError>> {
        let make = Arc::new(make);
        stream::try_unfold(Some(None::<String>), move |cursor| {
            let make = make.clone();
            async move {
                let Some(after) = cursor else {
                    return Ok(None);
                };
                let reply = self.send(make(after.as_deref())).await?;
                let next = reply
                    .headers
                    .get("x-soracom-next-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned);
                Ok(Some((reply, next.map(Some))))
            }
        })
        .boxed()
    }

    /// Finds the SIM ids of ICCIDs not paired yet, `QUERY_VALUES` a call; returns the calls.
    pub(super) async fn pair_iccids(&self, iccids: &[String]) -> Result<u64, CarrierError> {
        let missing: Vec<String> = {
            let known = self.sim_ids.lock().expect("ids lock");
            iccids
                .iter()
                .filter(|i| !known.contains_key(*i))
                .cloned()
                .collect()
        };
        let mut calls = 0;
        for chunk in missing.chunks(QUERY_VALUES) {
            let wanted: HashSet<&str> = chunk.iter().map(String::as_str).collect();
            let mut pages = self.pages(|after| {
                let mut call = Self::get("/v1/query/sims", "/v1/query/sims")
                    .query("iccid", chunk.join(","))
                    .query("search_type", "or")
                    .query("limit", PAGE);
                if let Some(after) = after {
                    call = call.query("last_evaluated_key", after);
                }
                call
            });
            while let Some(reply) = pages.try_next().await? {
                calls += 1;
                let sims: Vec<Sim> = reply.parse("/v1/query/sims")?;
                let mut known = self.sim_ids.lock().expect("ids lock");
                // The search matches parts of values: only exact ICCIDs pair.
                for sim in &sims {
                    for iccid in sim.iccids() {
                        if wanted.contains(iccid) {
                            known.insert(iccid.to_owned(), sim.sim_id.clone());
                        }
                    }
                }
            }
        }
        Ok(calls)
    }

    /// One listed SIM, read fresh: unknown when Soracom does not have it.
    pub(super) async fn read_one(&self, lookup: Lookup) -> Result<SimObservation, CarrierError> {
        let sim_id = match &lookup {
            Lookup::Device(d) => Some(d.to_string()),
            Lookup::Iccid(i) => self.sim_ids.lock().expect("ids lock").get(i).cloned(),
        };
        let Some(sim_id) = sim_id else {
            return Ok(lookup.unknown());
        };
        match self
            .send(Self::get("/v1/sims/{sim_id}", format!("/v1/sims/{sim_id}")))
            .await
        {
            Ok(reply) => Ok(reply
                .parse::<Sim>("/v1/sims/{sim_id}")?
                .observation(self.now_ms())),
            Err(CarrierError::NotFound { .. }) => Ok(lookup.unknown()),
            Err(e) => Err(e),
        }
    }

    /// Listed SIMs found by reading every SIM of the operator.
    pub(super) fn full_listing<'a>(
        &'a self,
        lookups: Vec<Lookup>,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
        let set = Arc::new(Mutex::new(Some(ListedSet::new(&lookups))));
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let now_ms = self.now_ms();
        let (taking, counting) = (set.clone(), calls.clone());
        let found = self
            .pages(|after| {
                let mut call = Self::get("/v1/sims", "/v1/sims").query("limit", PAGE);
                if let Some(after) = after {
                    call = call.query("last_evaluated_key", after);
                }
                call
            })
            .and_then(move |reply| {
                counting.fetch_add(1, Ordering::Relaxed);
                let page = reply.parse::<Vec<Sim>>("/v1/sims").map(|sims| {
                    let observed = sims.iter().map(|s| s.observation(now_ms)).collect();
                    taking
                        .lock()
                        .expect("set lock")
                        .as_mut()
                        .map_or_else(Vec::new, |set| set.take(observed))
                });
                futures::future::ready(page)
            });
        let rest = stream::once(async move {
            *self.last_lookup.lock().expect("lookup lock") = Some(LookupPlan::FullListing {
                calls: calls.load(Ordering::Relaxed),
            });
            Ok(set
                .lock()
                .expect("set lock")
                .take()
                .map_or_else(Vec::new, ListedSet::unknown))
        });
        found
            .chain(rest)
            .try_filter(|page| futures::future::ready(!page.is_empty()))
            .boxed()
    }
}

impl crate::SelectionPages for SoracomClient {
    /// Listed SIMs: a few are read one at a time (ICCIDs paired with SIM ids through the
    /// search, which lags writes but never changes a pairing); many are found in the full
    /// listing `/v1/sims`.
    fn listed_pages<'a>(
        &'a self,
        lookups: Vec<Lookup>,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
        if lookups.len() > ONE_BY_ONE_LIMIT {
            return self.full_listing(lookups);
        }
        stream::once(async move {
            let iccids: Vec<String> = lookups
                .iter()
                .filter_map(|l| match l {
                    Lookup::Iccid(i) => Some(i.clone()),
                    Lookup::Device(_) => None,
                })
                .collect();
            let searches = self.pair_iccids(&iccids).await?;
            let reads = lookups.len() as u64;
            *self.last_lookup.lock().expect("lookup lock") = Some(LookupPlan::OneByOne {
                calls: searches + reads,
            });
            Ok::<_, CarrierError>(lookups)
        })
        .map_ok(move |lookups| {
            crate::one_by_one(lookups, self.core.concurrency(), move |lookup| {
                self.read_one(lookup).boxed()
            })
        })
        .try_flatten()
        .boxed()
    }

    /// The SIMs carrying tag `index` (`NAME=VALUE`), from `/v1/subscribers`, each SIM once,
    /// skipping SIMs that carry an earlier tag or are listed.
    fn tagged<'a>(
        &'a self,
        selection: &'a Selection,
        index: usize,
        listed: Arc<HashSet<u64>>,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
        let tag = &selection.tags[index];
        let Some((name, value)) = tag.split_once('=') else {
            let error = CarrierError::Rejected {
                field: Some("selector.tags".into()),
                message: format!("{tag:?}: Soracom selects tags as NAME=VALUE"),
            };
            return stream::once(async move { Err(error) }).boxed();
        };
        let (name, value) = (name.to_owned(), value.to_owned());
        let earlier: HashSet<String> = selection.tags[..index].iter().cloned().collect();
        let mut seen = HashSet::new();
        let now_ms = self.now_ms();
        self.pages(move |after| {
            let mut call = Self::get("/v1/subscribers", "/v1/subscribers")
                .query("tag_name", &name)
                .query("tag_value", &value)
                .query("limit", PAGE);
            if let Some(after) = after {
                call = call.query("last_evaluated_key", after);
            }
            call
        })
        .and_then(move |reply| {
            let page = reply
                .parse::<Vec<Subscriber>>("/v1/subscribers")
                .and_then(|subscribers| {
                    subscribers
                        .iter()
                        // One row per IMSI: a SIM with several IMSIs is listed once.
                        .filter(|s| s.sim_id.as_ref().is_none_or(|id| seen.insert(id.clone())))
                        .map(|s| s.observation(now_ms))
                        .filter(|o| {
                            o.as_ref().map_or(true, |o| {
                                !o.tags.iter().any(|t| earlier.contains(t))
                                    && o.device_id.is_none_or(|d| !listed.contains(&d))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                });
            futures::future::ready(page)
        })
        .try_filter(|page| futures::future::ready(!page.is_empty()))
        .boxed()
    }

    fn concurrency(&self) -> usize {
        self.core.concurrency()
    }

    fn last_lookup(&self) -> &std::sync::Mutex<Option<simfleet_api::model::LookupPlan>> {
        &self.last_lookup
    }
}
