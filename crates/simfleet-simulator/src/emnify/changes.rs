//! emnify's state changes in the simulated world (the `World`'s methods its routes call): endpoint status (one, or many through the
//! bulk route, all checked before any applies) and SIM status.

use jiff::{SignedDuration, Timestamp};

use crate::fleet::{LinkState, Pending, Target};
use crate::world::{ChangeRefusal, JobKind, Surface, World};

impl World {
    /// emnify `PATCH /v1/endpoint/{id}` with a status id: 0 Enabled, 1 Disabled.
    pub(crate) fn patch_endpoint(
        &mut self,
        row: u32,
        status: i64,
        now: Timestamp,
    ) -> Result<(), ChangeRefusal> {
        let target = self.endpoint_target(row, status)?;
        let job = self.new_job(Surface::Emnify, JobKind::of(target), now);
        let delay = self.job_delay();
        self.change_endpoint(row, target, job, now, delay);
        Ok(())
    }

    /// emnify `PATCH /v2/endpoint/multi`: `(row, status id)` items. Every item is checked
    /// first: when any is refused, nothing changes and the refusals come back with the item's
    /// index. The accepted items form one job per direction.
    pub(crate) fn patch_endpoints(
        &mut self,
        items: &[(u32, i64)],
        now: Timestamp,
    ) -> Result<(), Vec<(usize, ChangeRefusal)>> {
        let mut targets = Vec::with_capacity(items.len());
        let mut refused = Vec::new();
        for (index, &(row, status)) in items.iter().enumerate() {
            match self.endpoint_target(row, status) {
                Ok(target) => targets.push((row, target)),
                Err(refusal) => refused.push((index, refusal)),
            }
        }
        if !refused.is_empty() {
            return Err(refused);
        }
        let mut jobs: [Option<(u32, SignedDuration)>; 2] = [None, None];
        for (row, target) in targets {
            let slot = &mut jobs[usize::from(target == Target::Live)];
            let (job, delay) = match *slot {
                Some(job) => job,
                None => {
                    let job = (
                        self.new_job(Surface::Emnify, JobKind::of(target), now),
                        self.job_delay(),
                    );
                    *slot = Some(job);
                    job
                }
            };
            self.change_endpoint(row, target, job, now, delay);
        }
        Ok(())
    }

    /// The target of an endpoint status id, or why the endpoint cannot take it.
    pub(crate) fn endpoint_target(&self, row: u32, status: i64) -> Result<Target, ChangeRefusal> {
        let target = match status {
            0 => Target::Live,
            1 => Target::Pause,
            other => return Err(ChangeRefusal::UnknownStatus(other)),
        };
        if self.fleet.sim(row).state == LinkState::Dead {
            return Err(ChangeRefusal::Deleted);
        }
        Ok(target)
    }

    /// Starts one endpoint's change as part of `job`.
    fn change_endpoint(
        &mut self,
        row: u32,
        target: Target,
        job: u32,
        now: Timestamp,
        delay: SignedDuration,
    ) {
        let sim = self.fleet.sim(row);
        let on_its_way = sim
            .pending
            .map(|p| p.to)
            .unwrap_or_else(|| match sim.state {
                LinkState::Live => Target::Live,
                _ => Target::Pause,
            });
        if on_its_way == target {
            self.counters.redundant_sims += 1;
        }
        // A later PATCH supersedes one in flight, as the last write wins at the carrier.
        self.fleet.sim_mut(row).pending = Some(Pending { to: target, job });
        self.schedule(row, job, now, delay);
    }

    /// emnify `PATCH /v1/sim/{id}` with a status id: 1 Activated, 2 Suspended.
    pub(crate) fn patch_sim(
        &mut self,
        row: u32,
        status: i64,
        now: Timestamp,
    ) -> Result<(), ChangeRefusal> {
        let suspend = match status {
            1 => false,
            2 => true,
            other => return Err(ChangeRefusal::UnknownStatus(other)),
        };
        let sim = self.fleet.sim(row);
        if sim.state == LinkState::Dead {
            return Err(ChangeRefusal::Deleted);
        }
        if sim.pending_sim.map_or(sim.sim_suspended, |p| p.to) == suspend {
            self.counters.redundant_sims += 1;
        }
        let kind = if suspend {
            JobKind::SuspendSim
        } else {
            JobKind::ActivateSim
        };
        let job = self.new_job(Surface::Emnify, kind, now);
        self.fleet.sim_mut(row).pending_sim = Some(Pending { to: suspend, job });
        let delay = self.job_delay();
        self.schedule(row, job, now, delay);
        Ok(())
    }
}
