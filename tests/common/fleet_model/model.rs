//! The reference model of a fleet under SimGroups: what each SIM's state and each group's
//! counts must be after a sequence of user, carrier and cluster events. Pure: no I/O, and none
//! of the operator's code. It is the specification written a second time, kept small:
//! - a SIM claimed by live groups that agree is in their state (a SIM the carrier paused stays
//!   paused for an Active group; a deactivated SIM never changes);
//! - a SIM claimed by groups that disagree is left as it was, and each of them counts it;
//! - a SIM nobody claims is left as it was, except that a deleted `Restore` group returns the
//!   SIMs it changed to their earlier state;
//! - groups on accounts of one carrier organisation claim the same SIMs in any namespace;
//! - a device the live DataQuotas that target it agree on has their quota; one they disagree on
//!   keeps the quota it had, and each of them counts it; a deleted `Remove` DataQuota takes
//!   away the quotas it set (a deactivated SIM's device holds none);
//! - while a namespace's credentials are broken, its groups and DataQuotas change nothing, and
//!   their claims still stand as far as the operator knows them: what a DataQuota there targets,
//!   and the SIMs a group there selects by tag, are known only once read in this process. One
//!   created, edited or re-selected while broken, or present at a restart, is `unread`: a SIM
//!   or device it claims with others may go either way (the others wait two minutes after a
//!   start for it, then act without it).
//!
//! Where the operator may rightly do either of two things (which of two agreeing groups
//! submitted a change, and so recorded it for a restore), the model says "either": those SIMs
//! are `free` after the restore, and the model adopts what it observes.

use std::collections::{BTreeMap, BTreeSet};

/// A SIM's state as the simulator names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Live,
    PausedUser,
    PausedSys,
    Dead,
}

impl State {
    pub fn parse(text: &str) -> Self {
        match text {
            "LIVE" => State::Live,
            "PAUSED-USER" => State::PausedUser,
            "PAUSED-SYS" => State::PausedSys,
            "DEAD" => State::Dead,
            other => panic!("a state the model does not know: {other}"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Live => "LIVE",
            State::PausedUser => "PAUSED-USER",
            State::PausedSys => "PAUSED-SYS",
            State::Dead => "DEAD",
        }
    }
}

/// The state a group declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Want {
    Active,
    Paused,
}

impl Want {
    pub fn name(self) -> &'static str {
        match self {
            Want::Active => "Active",
            Want::Paused => "Paused",
        }
    }

    pub fn other(self) -> Self {
        match self {
            Want::Active => Want::Paused,
            Want::Paused => Want::Active,
        }
    }
}

/// One SIM of the fleet, as the carrier had it at the start.
#[derive(Clone, Debug)]
pub struct Sim {
    pub device: u64,
    pub iccid: String,
    pub tags: Vec<String>,
    pub state: State,
    /// The volume (MB) of the device's data quota, if it has one.
    pub quota: Option<u32>,
}

/// A group's selector: one kind each, so that every pair of kinds meets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Tag(String),
    Iccids(Vec<String>),
    Devices(Vec<u64>),
}

impl Selector {
    fn selects(&self, sim: &Sim) -> bool {
        match self {
            Selector::Tag(tag) => sim.tags.contains(tag),
            Selector::Iccids(iccids) => iccids.contains(&sim.iccid),
            Selector::Devices(devices) => devices.contains(&sim.device),
        }
    }
}

/// A live group.
#[derive(Clone, Debug)]
pub struct Group {
    pub namespace: &'static str,
    pub name: String,
    pub want: Want,
    pub selector: Selector,
    pub restore: bool,
    /// `guard.maxChangesWithoutApproval`, when set.
    pub guard: Option<u32>,
    /// `metadata.generation`: 1 at creation, one more at each change of the spec.
    pub generation: i64,
    /// The generation whose change was approved (by its digest, while held).
    approved: Option<i64>,
    /// Its change exceeds its guard and is not approved: it sends nothing.
    pub held: bool,
    /// Whether it is held depends on a claim the operator cannot know (see the module's note).
    pub hold_uncertain: bool,
    /// A new generation (created or edited) not settled yet: its changes are first claims,
    /// which a `Restore` group records.
    fresh: bool,
    /// SIMs this group changed as a first claim, with their earlier state.
    recorded: BTreeMap<u64, State>,
    /// SIMs whose change the operator may or may not have recorded for this group.
    uncertain: BTreeSet<u64>,
}

/// What a DataQuota targets: one kind each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuotaTarget {
    Devices(Vec<u64>),
    Tag(String),
    /// The SIMs of the SimGroup of that name in the DataQuota's namespace.
    Group(String),
}

/// A live DataQuota (mode Set, expiry 30 days after the spec is first applied).
#[derive(Clone, Debug)]
pub struct Quota {
    pub namespace: &'static str,
    pub name: String,
    pub target: QuotaTarget,
    pub volume: u32,
    /// `onDelete: Remove` (otherwise Orphan).
    pub remove: bool,
    /// Devices this DataQuota set, alone.
    set: BTreeSet<u64>,
    /// Devices it may have set, with another that agreed.
    shared: BTreeSet<u64>,
}

/// A user, carrier or cluster event.
#[derive(Clone, Debug)]
pub enum Event {
    Create {
        namespace: &'static str,
        name: String,
        want: Want,
        selector: Selector,
        restore: bool,
        guard: Option<u32>,
    },
    Flip {
        name: String,
    },
    Select {
        name: String,
        selector: Selector,
    },
    Delete {
        name: String,
    },
    /// Someone changes a SIM in the carrier's portal.
    Drift {
        device: u64,
        to: State,
    },
    /// The carrier's system pauses a SIM (billing, limits).
    SystemPause {
        device: u64,
    },
    /// A person approves the change a group holds, by the digest its status shows.
    Approve {
        name: String,
    },
    /// A person approves the group's next generation ahead of the change (by generation).
    ApproveAhead {
        name: String,
    },
    /// `kubectl delete namespace`: its groups go (restoring as they say), then it is created
    /// again with its accounts.
    DeleteNamespace {
        namespace: &'static str,
    },
    /// The operator is killed (SIGKILL) and started again.
    Kill,
    CreateQuota {
        namespace: &'static str,
        name: String,
        target: QuotaTarget,
        volume: u32,
        remove: bool,
    },
    /// A new volume: a new generation, set again.
    EditQuota {
        name: String,
        volume: u32,
    },
    DeleteQuota {
        name: String,
    },
    /// The Secret of a namespace's account gets a key the carrier refuses.
    BreakSecret {
        namespace: &'static str,
    },
    /// The Secret gets the right key again.
    RepairSecret {
        namespace: &'static str,
    },
}

/// The fleet and the groups, as they must be.
#[derive(Clone, Debug)]
pub struct Model {
    pub sims: Vec<Sim>,
    pub groups: Vec<Group>,
    /// Deleted `Restore` groups whose restore the next settle carries out.
    restoring: Vec<Group>,
    /// SIMs whose state the model cannot tell (see the module's note): taken as observed.
    pub free: BTreeSet<u64>,
    pub quotas: Vec<Quota>,
    /// Deleted `Remove` DataQuotas whose removal the next settle carries out.
    removing: Vec<Quota>,
    /// Devices whose quota the model cannot tell: taken as observed.
    pub free_quotas: BTreeSet<u64>,
    /// Namespaces whose account's Secret is broken.
    pub broken: BTreeSet<&'static str>,
    /// Groups and DataQuotas (by name) whose claims the operator cannot know (see the note).
    pub unread: BTreeSet<String>,
}

impl Model {
    pub fn new(sims: Vec<Sim>) -> Self {
        Self {
            sims,
            groups: Vec::new(),
            restoring: Vec::new(),
            free: BTreeSet::new(),
            quotas: Vec::new(),
            removing: Vec::new(),
            free_quotas: BTreeSet::new(),
            broken: BTreeSet::new(),
            unread: BTreeSet::new(),
        }
    }

    /// Whether a group sends its changes: not held for approval, and its account works.
    fn acts(&self, group: &Group) -> bool {
        !group.held && !self.broken.contains(group.namespace)
    }

    pub fn quota(&self, name: &str) -> Option<&Quota> {
        self.quotas.iter().find(|q| q.name == name)
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Applies an event's immediate effect (the spec or the carrier changes); `settle` then says
    /// what the operator must have made of it.
    pub fn apply(&mut self, event: &Event) {
        self.note_unread(event);
        match event {
            Event::Create {
                namespace,
                name,
                want,
                selector,
                restore,
                guard,
            } => self.groups.push(Group {
                namespace,
                name: name.clone(),
                want: *want,
                selector: selector.clone(),
                restore: *restore,
                guard: *guard,
                generation: 1,
                approved: None,
                held: false,
                hold_uncertain: false,
                fresh: true,
                recorded: BTreeMap::new(),
                uncertain: BTreeSet::new(),
            }),
            Event::Flip { name } => {
                let group = self.group_mut(name);
                group.want = group.want.other();
                group.generation += 1;
                group.fresh = true;
            }
            Event::Select { name, selector } => {
                let group = self.group_mut(name);
                group.selector = selector.clone();
                group.generation += 1;
                group.fresh = true;
            }
            Event::Delete { name } => {
                let at = self.groups.iter().position(|g| &g.name == name).unwrap();
                let group = self.groups.remove(at);
                if group.restore {
                    self.restoring.push(group);
                }
            }
            Event::Drift { device, to } => {
                let sim = self.sim_mut(*device);
                if matches!(sim.state, State::Live | State::PausedUser) {
                    sim.state = *to;
                }
            }
            Event::DeleteNamespace { namespace } => {
                let (gone, kept): (Vec<Group>, Vec<Group>) = self
                    .groups
                    .drain(..)
                    .partition(|g| g.namespace == *namespace);
                self.groups = kept;
                self.restoring
                    .extend(gone.into_iter().filter(|g| g.restore));
                let (gone, kept): (Vec<Quota>, Vec<Quota>) = self
                    .quotas
                    .drain(..)
                    .partition(|q| q.namespace == *namespace);
                self.quotas = kept;
                self.removing.extend(gone.into_iter().filter(|q| q.remove));
            }
            Event::CreateQuota {
                namespace,
                name,
                target,
                volume,
                remove,
            } => self.quotas.push(Quota {
                namespace,
                name: name.clone(),
                target: target.clone(),
                volume: *volume,
                remove: *remove,
                set: BTreeSet::new(),
                shared: BTreeSet::new(),
            }),
            Event::EditQuota { name, volume } => {
                let quota = self.quotas.iter_mut().find(|q| &q.name == name).unwrap();
                quota.volume = *volume;
            }
            Event::DeleteQuota { name } => {
                let at = self.quotas.iter().position(|q| &q.name == name).unwrap();
                let quota = self.quotas.remove(at);
                if quota.remove {
                    self.removing.push(quota);
                }
            }
            Event::SystemPause { device } => {
                let sim = self.sim_mut(*device);
                if matches!(sim.state, State::Live | State::PausedUser) {
                    sim.state = State::PausedSys;
                }
            }
            Event::Approve { name } => {
                let group = self.group_mut(name);
                if group.held {
                    group.approved = Some(group.generation);
                }
            }
            Event::BreakSecret { namespace } => {
                self.broken.insert(namespace);
            }
            Event::RepairSecret { namespace } => {
                self.broken.remove(namespace);
            }
            // An approval given ahead approves nothing.
            Event::ApproveAhead { .. } | Event::Kill => {}
        }
    }

    /// Which claims the operator cannot know after `event` (see the module's note).
    fn note_unread(&mut self, event: &Event) {
        let broken = |ns: &str| self.broken.contains(ns);
        let mut unread = Vec::new();
        match event {
            Event::Create {
                namespace,
                name,
                selector: Selector::Tag(_),
                ..
            }
            | Event::CreateQuota {
                namespace, name, ..
            } if broken(namespace) => unread.push(name.clone()),
            Event::Select { name, selector } => {
                let group = self.group(name).unwrap();
                if broken(group.namespace) && matches!(selector, Selector::Tag(_)) {
                    unread.push(name.clone());
                } else {
                    self.unread.remove(name);
                }
            }
            Event::EditQuota { name, .. } if broken(self.quota(name).unwrap().namespace) => {
                unread.push(name.clone())
            }
            Event::Kill => {
                unread.extend(
                    self.groups
                        .iter()
                        .filter(|g| broken(g.namespace) && matches!(g.selector, Selector::Tag(_)))
                        .map(|g| g.name.clone()),
                );
                unread.extend(
                    self.quotas
                        .iter()
                        .filter(|q| broken(q.namespace))
                        .map(|q| q.name.clone()),
                );
            }
            Event::RepairSecret { namespace } => {
                let names: Vec<String> = self
                    .groups
                    .iter()
                    .filter(|g| g.namespace == *namespace)
                    .map(|g| g.name.clone())
                    .chain(
                        self.quotas
                            .iter()
                            .filter(|q| q.namespace == *namespace)
                            .map(|q| q.name.clone()),
                    )
                    .collect();
                for name in names {
                    self.unread.remove(&name);
                }
            }
            _ => {}
        }
        self.unread.extend(unread);
    }

    /// Whether a claim the operator cannot know meets `sim` (its state or quota may then go
    /// either way, and the counts of those that select it may differ).
    pub fn unread_claim_on(&self, sim: &Sim) -> bool {
        self.claimants(sim)
            .iter()
            .any(|g| self.unread.contains(&g.name))
            || self
                .quota_claimants(sim)
                .iter()
                .any(|q| self.unread.contains(&q.name))
    }

    /// Whether a SIM the group selects meets a claim the operator cannot know: its counts and
    /// its hold may then differ from the model's.
    pub fn group_uncertain(&self, group: &Group) -> bool {
        self.sims
            .iter()
            .any(|s| group.selector.selects(s) && self.unread_claim_on(s))
    }

    /// Whether a device the DataQuota targets meets a claim the operator cannot know.
    pub fn quota_uncertain(&self, quota: &Quota) -> bool {
        self.sims
            .iter()
            .any(|s| self.targets(quota, s) && self.unread_claim_on(s))
    }

    /// The state a SIM must reach for `want`, or `None` when it stays as it is (a SIM the
    /// carrier paused stays paused for an Active group; a paused one is in state for a Paused
    /// one).
    fn target(want: Want, state: State) -> Option<State> {
        match (want, state) {
            (_, State::Dead) | (Want::Active, State::PausedSys) => None,
            (Want::Active, State::Live) => None,
            (Want::Active, _) => Some(State::Live),
            (Want::Paused, State::Live) => Some(State::PausedUser),
            (Want::Paused, _) => None,
        }
    }

    /// Marks the groups whose change (the SIMs they alone or with agreeing groups want changed)
    /// exceeds their guard without an approval of this generation.
    fn hold_guarded(&mut self) {
        for i in 0..self.groups.len() {
            let group = &self.groups[i];
            let Some(guard) = group.guard else {
                self.groups[i].held = false;
                self.groups[i].hold_uncertain = false;
                continue;
            };
            let changing: Vec<&Sim> = self
                .sims
                .iter()
                .filter(|sim| group.selector.selects(sim))
                .filter(|sim| Self::target(group.want, sim.state).is_some())
                .collect();
            let opposed = |sim: &Sim| {
                self.groups
                    .iter()
                    .any(|g| g.want != group.want && g.selector.selects(sim))
            };
            let changes = changing.iter().filter(|sim| !opposed(sim)).count();
            // A claim the operator cannot know may make it count a SIM the model does not
            // (or the other way): the hold may then go either way.
            let unknown = changing
                .iter()
                .filter(|sim| self.unread_claim_on(sim))
                .count();
            let approved = group.approved == Some(group.generation);
            let held = changes > guard as usize && !approved;
            let at_most = (changes + unknown) > guard as usize && !approved;
            let at_least = changes.saturating_sub(unknown) > guard as usize && !approved;
            self.groups[i].held = held;
            self.groups[i].hold_uncertain = at_most != at_least;
        }
    }

    /// The live groups that select `sim`.
    pub fn claimants(&self, sim: &Sim) -> Vec<&Group> {
        self.groups
            .iter()
            .filter(|g| g.selector.selects(sim))
            .collect()
    }

    /// What the operator must have done once everything settled. Returns the number of SIMs
    /// whose state groups changed (an upper bound of what the carrier was asked to change).
    pub fn settle(&mut self) -> usize {
        let mut returns: BTreeMap<u64, State> = BTreeMap::new();
        let mut maybe_returned: BTreeSet<u64> = BTreeSet::new();
        for gone in self.restoring.drain(..) {
            for (device, prior) in gone.recorded {
                // Two deleted groups recorded it: either earlier state may come back.
                if returns.insert(device, prior).is_some_and(|p| p != prior) {
                    maybe_returned.insert(device);
                }
            }
            maybe_returned.extend(gone.uncertain);
        }
        // Rounds until nothing moves: a change by one group can bring another's below its guard
        // (its remaining change is smaller), which then goes without approval.
        let mut changed = 0;
        loop {
            self.hold_guarded();
            let round = self.settle_round(&returns, &maybe_returned);
            returns.clear();
            maybe_returned.clear();
            changed += round;
            if round == 0 {
                break;
            }
        }
        // Held as the settled fleet says.
        self.hold_guarded();
        // A group whose account is broken has sent nothing of this generation yet.
        for group in &mut self.groups {
            group.fresh &= self.broken.contains(group.namespace);
        }
        self.settle_quotas();
        changed
    }

    /// Whether `quota` targets `sim`'s device (the SIMs of a SimGroup: of the live one of that
    /// name in its namespace).
    fn targets(&self, quota: &Quota, sim: &Sim) -> bool {
        match &quota.target {
            QuotaTarget::Devices(devices) => devices.contains(&sim.device),
            QuotaTarget::Tag(tag) => sim.tags.contains(tag),
            QuotaTarget::Group(name) => self.groups.iter().any(|g| {
                &g.name == name && g.namespace == quota.namespace && g.selector.selects(sim)
            }),
        }
    }

    /// The live DataQuotas that target `sim`'s device.
    pub fn quota_claimants(&self, sim: &Sim) -> Vec<&Quota> {
        self.quotas
            .iter()
            .filter(|q| self.targets(q, sim))
            .collect()
    }

    /// The quotas once the DataQuotas settled: a device the live DataQuotas that target it agree
    /// on has their volume; one they disagree on keeps its quota; one no live DataQuota targets
    /// loses the quota a deleted `Remove` DataQuota set there alone.
    fn settle_quotas(&mut self) {
        let mut removed: BTreeSet<u64> = BTreeSet::new();
        let mut maybe_removed: BTreeSet<u64> = BTreeSet::new();
        for gone in self.removing.drain(..) {
            removed.extend(gone.set);
            maybe_removed.extend(gone.shared);
        }
        for index in 0..self.sims.len() {
            let sim = self.sims[index].clone();
            // A deactivated SIM's device cannot be given a quota.
            if sim.state == State::Dead {
                continue;
            }
            let claimants: Vec<usize> = (0..self.quotas.len())
                .filter(|&q| self.targets(&self.quotas[q], &sim))
                .collect();
            if claimants
                .iter()
                .any(|&q| self.unread.contains(&self.quotas[q].name))
            {
                self.free_quotas.insert(sim.device);
                continue;
            }
            let volumes: BTreeSet<u32> = claimants.iter().map(|&q| self.quotas[q].volume).collect();
            match volumes.len() {
                0 if maybe_removed.contains(&sim.device) => {
                    self.free_quotas.insert(sim.device);
                }
                0 if removed.contains(&sim.device) => self.sims[index].quota = None,
                // Set only by a DataQuota whose account works.
                1 if claimants
                    .iter()
                    .any(|&q| !self.broken.contains(self.quotas[q].namespace)) =>
                {
                    self.sims[index].quota = volumes.first().copied();
                    let alone = claimants.len() == 1;
                    for &q in &claimants {
                        let quota = &mut self.quotas[q];
                        if alone && !quota.shared.contains(&sim.device) {
                            quota.set.insert(sim.device);
                        } else {
                            // Which of agreeing DataQuotas set it (so whose removal takes it)
                            // is the operator's choice.
                            quota.set.remove(&sim.device);
                            quota.shared.insert(sim.device);
                        }
                    }
                }
                // No live claimant and nothing removed, or a conflict: it stays.
                _ => {}
            }
        }
    }

    /// A DataQuota's counts as status must show them: (targeted, conflicting).
    pub fn quota_counts(&self, quota: &Quota) -> (u64, u64) {
        let mut targeted = 0;
        let mut conflicting = 0;
        for sim in self.sims.iter().filter(|s| self.targets(quota, s)) {
            targeted += 1;
            let opposed = self
                .quota_claimants(sim)
                .iter()
                .any(|q| q.name != quota.name && q.volume != quota.volume);
            if opposed && sim.state != State::Dead {
                conflicting += 1;
            }
        }
        (targeted, conflicting)
    }

    /// One round of a settle: each SIM goes where its agreeing claimants not held want it, or
    /// back where a deleted group's restore returns it. The number of SIMs changed.
    fn settle_round(
        &mut self,
        returns: &BTreeMap<u64, State>,
        maybe_returned: &BTreeSet<u64>,
    ) -> usize {
        let mut changed = 0;
        for index in 0..self.sims.len() {
            let sim = self.sims[index].clone();
            if sim.state == State::Dead {
                continue;
            }
            let claimants: Vec<(usize, Want)> = self
                .groups
                .iter()
                .enumerate()
                .filter(|(_, g)| g.selector.selects(&sim))
                .map(|(i, g)| (i, g.want))
                .collect();
            if claimants.iter().any(|(i, _)| {
                self.unread.contains(&self.groups[*i].name) || self.groups[*i].hold_uncertain
            }) {
                self.free.insert(sim.device);
                continue;
            }
            let wants: BTreeSet<Want> = claimants.iter().map(|(_, w)| *w).collect();
            let target = match wants.len() {
                // Nobody claims it: a restore returns it, or it stays.
                0 => {
                    if maybe_returned.contains(&sim.device) {
                        self.free.insert(sim.device);
                        continue;
                    }
                    match returns.get(&sim.device) {
                        Some(prior) if sim.state != State::PausedSys => *prior,
                        _ => continue,
                    }
                }
                1 => {
                    // Sent only by a claimant not held for approval, whose account works.
                    if !claimants.iter().any(|(i, _)| self.acts(&self.groups[*i])) {
                        continue;
                    }
                    match Self::target(wants.into_iter().next().unwrap(), sim.state) {
                        Some(target) => target,
                        None => continue,
                    }
                }
                // A conflict: left as it is.
                _ => continue,
            };
            if target == sim.state {
                continue;
            }
            changed += 1;
            let alone = claimants
                .iter()
                .filter(|(i, _)| self.acts(&self.groups[*i]))
                .count()
                == 1;
            for (i, _) in &claimants {
                let acts = self.acts(&self.groups[*i]);
                let group = &mut self.groups[*i];
                if !acts || !group.restore || group.recorded.contains_key(&sim.device) {
                    continue;
                }
                if group.fresh && alone {
                    group.recorded.insert(sim.device, sim.state);
                } else {
                    // Another agreeing group may have sent it, or it corrected drift.
                    group.uncertain.insert(sim.device);
                }
            }
            self.sims[index].state = target;
        }
        changed
    }

    /// A group's counts as status must show them: (selected, conflicting).
    pub fn counts(&self, group: &Group) -> (u64, u64) {
        let mut selected = 0;
        let mut conflicting = 0;
        for sim in self.sims.iter().filter(|s| group.selector.selects(s)) {
            selected += 1;
            let opposed = self
                .groups
                .iter()
                .any(|g| g.name != group.name && g.want != group.want && g.selector.selects(sim));
            if opposed && sim.state != State::Dead {
                conflicting += 1;
            }
        }
        (selected, conflicting)
    }

    /// Takes an observed state for a SIM the model cannot tell.
    pub fn adopt(&mut self, device: u64, state: State) {
        self.sim_mut(device).state = state;
        self.free.remove(&device);
    }

    /// Takes an observed quota for a device the model cannot tell.
    pub fn adopt_quota(&mut self, device: u64, quota: Option<u32>) {
        self.sim_mut(device).quota = quota;
        self.free_quotas.remove(&device);
    }

    fn group_mut(&mut self, name: &str) -> &mut Group {
        self.groups.iter_mut().find(|g| g.name == name).unwrap()
    }

    fn sim_mut(&mut self, device: u64) -> &mut Sim {
        self.sims.iter_mut().find(|s| s.device == device).unwrap()
    }
}
