//! The simulated fleet: one row per SIM, with the ids each carrier knows it by.
//!
//! Ids follow the row index, so a million rows need no id maps: row `i` is Hologram device and
//! emnify endpoint `1001 + i`, Hologram link `500001 + i`, emnify SIM `700001 + i`, and (for a
//! seeded fleet) ICCID `8944500000000000001 + i`.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::quota::Quota;

/// Device (Hologram) and endpoint (emnify) id of row 0.
pub(crate) const DEVICE_ID_BASE: u64 = 1001;
/// Hologram cellular link id of row 0.
pub(crate) const LINK_ID_BASE: u64 = 500_001;
/// emnify SIM id of row 0.
pub(crate) const SIM_ID_BASE: u64 = 700_001;
/// ICCID of row 0 in a seeded fleet (19 digits).
pub(crate) const ICCID_BASE: u128 = 8_944_500_000_000_000_001;
/// Tags a seeded fleet draws from.
pub const SEED_TAGS: [&str; 6] = [
    "cold-chain",
    "smart-meter",
    "fleet-tracker",
    "vending",
    "pos-terminal",
    "pilot",
];

/// A SIM's connectivity state at the carrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinkState {
    /// Live: data flows (Hologram `LIVE`, emnify endpoint Enabled).
    #[serde(rename = "LIVE")]
    Live,
    /// Paused by the customer (Hologram `PAUSED-USER`, emnify endpoint Disabled).
    #[serde(rename = "PAUSED-USER")]
    PausedUser,
    /// Paused by the carrier's system, billing or limits (Hologram `PAUSED-SYS`).
    #[serde(rename = "PAUSED-SYS")]
    PausedSys,
    /// Deactivated for good (Hologram `DEAD`, emnify Deleted).
    #[serde(rename = "DEAD")]
    Dead,
}

impl LinkState {
    /// Hologram's name for the state.
    pub(crate) fn hologram_name(self) -> &'static str {
        match self {
            LinkState::Live => "LIVE",
            LinkState::PausedUser => "PAUSED-USER",
            LinkState::PausedSys => "PAUSED-SYS",
            LinkState::Dead => "DEAD",
        }
    }
}

/// Where a pending connectivity change takes the SIM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// To paused by the customer.
    Pause,
    /// To live.
    Live,
    /// Hologram `deactivate`: to `DEAD`, for good.
    Deactivate,
}

impl Target {
    /// The state the change ends in.
    pub fn state(self) -> LinkState {
        match self {
            Target::Pause => LinkState::PausedUser,
            Target::Live => LinkState::Live,
            Target::Deactivate => LinkState::Dead,
        }
    }
}

/// A change accepted and not yet applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending<T> {
    /// Where the change goes.
    pub to: T,
    /// The job (action) it belongs to, an index into the job list.
    pub job: u32,
}

/// One SIM and its device.
#[derive(Debug)]
pub struct Sim {
    /// ICCID as a number (ICCIDs start with 89, so no leading zeros are lost).
    pub iccid: u128,
    /// Hologram organisation that owns it.
    pub org_id: u64,
    /// Tag ids (indexes into the fleet's tag names).
    pub tags: Box<[u16]>,
    /// Connectivity state.
    pub state: LinkState,
    /// emnify SIM status Suspended (separate from the endpoint's status).
    pub sim_suspended: bool,
    /// Whether a `PAUSED-SYS` SIM may be resumed through the API (otherwise it needs the
    /// dashboard, e.g. to settle a bill).
    pub sys_resumable: bool,
    /// Whether a SIM is assigned to the device: without one, an emnify endpoint shows `sim:
    /// null`, a Hologram device has no cellular link, and the ICCID finds nothing.
    pub has_sim: bool,
    /// Connectivity change in flight.
    pub pending: Option<Pending<Target>>,
    /// emnify SIM status change in flight (`true`: to Suspended).
    pub pending_sim: Option<Pending<bool>>,
    /// The device's data quota, if any.
    pub quota: Option<Box<Quota>>,
}

/// The table of SIMs with its indexes.
#[derive(Debug, Default)]
pub struct Fleet {
    sims: Vec<Sim>,
    tag_names: Vec<String>,
    tag_ids: HashMap<String, u16>,
    /// Rows carrying each tag, ascending.
    tag_members: Vec<Vec<u32>>,
    /// Tags deleted through Hologram's API (their ids are not reused).
    tag_deleted: Vec<bool>,
    by_iccid: HashMap<u128, u32>,
}

/// How to seed a fleet.
#[derive(Clone, Debug)]
pub struct SeedConfig {
    /// Number of SIMs.
    pub sims: usize,
    /// Seed of the random choices (tags, states), so a fleet can be recreated exactly.
    pub seed: u64,
    /// Share of SIMs paused by the customer.
    pub paused_share: f64,
    /// Share of SIMs paused by the carrier's system.
    pub paused_by_system_share: f64,
    /// Share of SIMs deactivated.
    pub deactivated_share: f64,
    /// Organisation of every seeded SIM.
    pub org_id: u64,
}

impl Default for SeedConfig {
    fn default() -> Self {
        Self {
            sims: 1_000,
            seed: 7,
            paused_share: 0.05,
            paused_by_system_share: 0.02,
            deactivated_share: 0.01,
            org_id: 1,
        }
    }
}

/// A fleet file: SIMs listed by hand (`--fleet FILE`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FleetFile {
    /// Organisation of SIMs that do not name one.
    #[serde(default = "default_org")]
    pub org_id: u64,
    /// The SIMs, in row order (row `i` gets device id `1001 + i`).
    pub sims: Vec<FleetFileSim>,
}

fn default_org() -> u64 {
    1
}

/// One SIM of a fleet file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FleetFileSim {
    /// ICCID, 19 to 22 digits starting with 89.
    pub iccid: String,
    /// Tag names.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Initial state, Hologram's names: `LIVE`, `PAUSED-USER`, `PAUSED-SYS`, `DEAD`.
    #[serde(default = "default_state")]
    pub state: LinkState,
    /// Organisation, when not the file's.
    #[serde(default)]
    pub org_id: Option<u64>,
    /// For `PAUSED-SYS`: whether the API may resume it (default true).
    #[serde(default = "default_true")]
    pub resumable: bool,
    /// `false`: the device has no SIM assigned (the iccid is then only the row's key).
    #[serde(default = "default_true")]
    pub sim: bool,
}

fn default_state() -> LinkState {
    LinkState::Live
}

fn default_true() -> bool {
    true
}

/// Why a fleet could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The fleet file could not be read.
    #[error("reading fleet file {path}: {message}")]
    Read { path: String, message: String },
    /// A row of the fleet file is wrong.
    #[error("fleet file sims[{row}].{field}: {message}")]
    Row {
        row: usize,
        field: &'static str,
        message: String,
    },
    /// More distinct tags than the table can index.
    #[error("a fleet may use at most 65535 distinct tags")]
    TooManyTags,
}

/// Parses an ICCID: 19 to 22 digits starting with 89.
pub(crate) fn parse_iccid(text: &str) -> Option<u128> {
    let valid = (19..=22).contains(&text.len())
        && text.starts_with("89")
        && text.bytes().all(|b| b.is_ascii_digit());
    if valid { text.parse().ok() } else { None }
}

impl Fleet {
    /// A deterministic fleet drawn from `config`.
    pub fn seeded(config: &SeedConfig) -> Self {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let mut fleet = Fleet::default();
        fleet.sims.reserve_exact(config.sims);
        for i in 0..config.sims {
            let mut tags = vec![fleet.intern(SEED_TAGS[rng.usize(0..SEED_TAGS.len() - 1)])];
            if rng.f64() < 0.05 {
                tags.push(fleet.intern(SEED_TAGS[SEED_TAGS.len() - 1]));
            }
            let roll = rng.f64();
            let state = if roll < config.deactivated_share {
                LinkState::Dead
            } else if roll < config.deactivated_share + config.paused_by_system_share {
                LinkState::PausedSys
            } else if roll
                < config.deactivated_share + config.paused_by_system_share + config.paused_share
            {
                LinkState::PausedUser
            } else {
                LinkState::Live
            };
            fleet.push(Sim {
                iccid: ICCID_BASE + i as u128,
                org_id: config.org_id,
                tags: tags.into_boxed_slice(),
                state,
                sim_suspended: false,
                sys_resumable: true,
                has_sim: true,
                pending: None,
                pending_sim: None,
                quota: None,
            });
        }
        fleet
    }

    /// A fleet read from a YAML fleet file.
    pub(crate) fn from_file(path: &Path) -> Result<Self, FleetError> {
        let read_error = |message: String| FleetError::Read {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        let file: FleetFile =
            serde_saphyr::from_str(&text).map_err(|e| read_error(e.to_string()))?;
        Self::from_fleet_file(file)
    }

    /// A fleet from parsed fleet-file rows.
    pub(crate) fn from_fleet_file(file: FleetFile) -> Result<Self, FleetError> {
        let mut fleet = Fleet::default();
        for (row, entry) in file.sims.into_iter().enumerate() {
            let iccid = parse_iccid(&entry.iccid).ok_or_else(|| FleetError::Row {
                row,
                field: "iccid",
                message: format!("{:?} is not 19 to 22 digits starting with 89", entry.iccid),
            })?;
            if fleet.by_iccid.contains_key(&iccid) {
                return Err(FleetError::Row {
                    row,
                    field: "iccid",
                    message: format!("{} appears twice", entry.iccid),
                });
            }
            let mut tags = Vec::with_capacity(entry.tags.len());
            for tag in &entry.tags {
                if tag.is_empty() || tag.contains(',') {
                    return Err(FleetError::Row {
                        row,
                        field: "tags",
                        message: format!("{tag:?}: a tag is non-empty and has no comma"),
                    });
                }
                if fleet.tag_names.len() >= usize::from(u16::MAX)
                    && !fleet.tag_ids.contains_key(tag)
                {
                    return Err(FleetError::TooManyTags);
                }
                tags.push(fleet.intern(tag));
            }
            fleet.push(Sim {
                iccid,
                org_id: entry.org_id.unwrap_or(file.org_id),
                tags: tags.into_boxed_slice(),
                state: entry.state,
                sim_suspended: false,
                sys_resumable: entry.resumable,
                has_sim: entry.sim,
                pending: None,
                pending_sim: None,
                quota: None,
            });
        }
        Ok(fleet)
    }

    fn intern(&mut self, tag: &str) -> u16 {
        if let Some(&id) = self.tag_ids.get(tag) {
            return id;
        }
        let id = u16::try_from(self.tag_names.len()).expect("tag count checked by the caller");
        self.tag_names.push(tag.to_owned());
        self.tag_ids.insert(tag.to_owned(), id);
        self.tag_members.push(Vec::new());
        self.tag_deleted.push(false);
        id
    }

    fn push(&mut self, mut sim: Sim) {
        let row = u32::try_from(self.sims.len()).expect("at most 4 billion SIMs");
        let mut tags = sim.tags.to_vec();
        tags.sort_unstable();
        tags.dedup();
        sim.tags = tags.into_boxed_slice();
        for &tag in sim.tags.iter() {
            self.tag_members[usize::from(tag)].push(row);
        }
        if sim.has_sim {
            self.by_iccid.insert(sim.iccid, row);
        }
        self.sims.push(sim);
    }

    /// Number of SIMs.
    pub fn len(&self) -> usize {
        self.sims.len()
    }

    /// True when the fleet has no SIM.
    pub fn is_empty(&self) -> bool {
        self.sims.is_empty()
    }

    /// The SIM in a row.
    pub fn sim(&self, row: u32) -> &Sim {
        &self.sims[row as usize]
    }

    /// The SIM in a row, to change it.
    pub(crate) fn sim_mut(&mut self, row: u32) -> &mut Sim {
        &mut self.sims[row as usize]
    }

    /// Row of a Hologram device id or emnify endpoint id.
    pub(crate) fn row_of_device(&self, device_id: u64) -> Option<u32> {
        self.row_from(device_id, DEVICE_ID_BASE)
    }

    /// Row of a Hologram link id.
    pub(crate) fn row_of_link(&self, link_id: u64) -> Option<u32> {
        self.row_from(link_id, LINK_ID_BASE)
    }

    /// Row of an emnify SIM id.
    pub(crate) fn row_of_sim_id(&self, sim_id: u64) -> Option<u32> {
        self.row_from(sim_id, SIM_ID_BASE)
    }

    fn row_from(&self, id: u64, base: u64) -> Option<u32> {
        let row = id.checked_sub(base)?;
        (row < self.sims.len() as u64).then_some(row as u32)
    }

    /// Row of an ICCID.
    pub(crate) fn row_of_iccid(&self, iccid: &str) -> Option<u32> {
        parse_iccid(iccid).and_then(|n| self.by_iccid.get(&n).copied())
    }

    /// Id of a tag name.
    pub fn tag_id(&self, name: &str) -> Option<u16> {
        self.tag_ids.get(name).copied()
    }

    /// Number of distinct tags.
    pub(crate) fn tag_count(&self) -> usize {
        self.tag_names.len()
    }

    /// Name of a tag id.
    pub(crate) fn tag_name(&self, id: u16) -> &str {
        &self.tag_names[usize::from(id)]
    }

    /// Rows carrying a tag, ascending.
    pub(crate) fn tag_rows(&self, id: u16) -> &[u32] {
        &self.tag_members[usize::from(id)]
    }

    /// Whether a tag id names a tag (not deleted).
    pub(crate) fn tag_exists(&self, id: u16) -> bool {
        self.tag_deleted.get(usize::from(id)).is_some_and(|d| !d)
    }

    /// Creates a tag (or finds the one with this name); `None` when the table is full.
    pub(crate) fn create_tag(&mut self, name: &str) -> Option<u16> {
        if let Some(&id) = self.tag_ids.get(name) {
            return Some(id);
        }
        if self.tag_names.len() >= usize::from(u16::MAX) {
            return None;
        }
        Some(self.intern(name))
    }

    /// Adds a tag to a SIM (a no-op when it carries it).
    pub(crate) fn link_tag(&mut self, tag: u16, row: u32) {
        let sim = &mut self.sims[row as usize];
        if let Err(at) = sim.tags.binary_search(&tag) {
            let mut tags = sim.tags.to_vec();
            tags.insert(at, tag);
            sim.tags = tags.into_boxed_slice();
            let members = &mut self.tag_members[usize::from(tag)];
            if let Err(at) = members.binary_search(&row) {
                members.insert(at, row);
            }
        }
    }

    /// Removes a tag from a SIM (a no-op when it does not carry it).
    pub(crate) fn unlink_tag(&mut self, tag: u16, row: u32) {
        let sim = &mut self.sims[row as usize];
        if let Ok(at) = sim.tags.binary_search(&tag) {
            let mut tags = sim.tags.to_vec();
            tags.remove(at);
            sim.tags = tags.into_boxed_slice();
            let members = &mut self.tag_members[usize::from(tag)];
            if let Ok(at) = members.binary_search(&row) {
                members.remove(at);
            }
        }
    }

    /// Deletes a tag: it is removed from every SIM carrying it.
    pub(crate) fn delete_tag(&mut self, tag: u16) {
        for row in std::mem::take(&mut self.tag_members[usize::from(tag)]) {
            self.unlink_tag(tag, row);
        }
        let name = self.tag_names[usize::from(tag)].clone();
        self.tag_ids.remove(&name);
        self.tag_deleted[usize::from(tag)] = true;
    }

    /// Names of a SIM's tags.
    pub(crate) fn tag_names_of(&self, row: u32) -> Vec<&str> {
        self.sim(row)
            .tags
            .iter()
            .map(|&t| self.tag_name(t))
            .collect()
    }

    /// Rows from `from` on, in ascending order, among all rows or among one tag's rows.
    pub(crate) fn rows_from(
        &self,
        tag: Option<u16>,
        from: u32,
    ) -> Box<dyn Iterator<Item = u32> + '_> {
        match tag {
            Some(tag) => {
                let rows = self.tag_rows(tag);
                let start = rows.partition_point(|&r| r < from);
                Box::new(rows[start..].iter().copied())
            }
            None => Box::new(from..self.sims.len() as u32),
        }
    }
}

/// Hologram device id of a row.
pub fn device_id(row: u32) -> u64 {
    DEVICE_ID_BASE + u64::from(row)
}

/// Hologram link id of a row.
pub(crate) fn link_id(row: u32) -> u64 {
    LINK_ID_BASE + u64::from(row)
}

/// emnify SIM id of a row.
pub fn sim_id(row: u32) -> u64 {
    SIM_ID_BASE + u64::from(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeding_is_deterministic_and_follows_the_shares() {
        let config = SeedConfig {
            sims: 10_000,
            ..SeedConfig::default()
        };
        let a = Fleet::seeded(&config);
        let b = Fleet::seeded(&config);
        let states = |f: &Fleet| {
            (0..f.len() as u32)
                .map(|r| f.sim(r).state)
                .collect::<Vec<_>>()
        };
        assert_eq!(states(&a), states(&b));
        let count = |s: LinkState| states(&a).iter().filter(|&&x| x == s).count();
        assert!(
            (50..=150).contains(&count(LinkState::Dead)),
            "{}",
            count(LinkState::Dead)
        );
        assert!((120..=280).contains(&count(LinkState::PausedSys)));
        assert_eq!(a.row_of_iccid("8944500000000000001"), Some(0));
        assert_eq!(a.row_of_device(1001), Some(0));
        assert_eq!(a.row_of_device(1000), None);
        assert_eq!(a.row_of_device(11_001), None);
        let cold = a.tag_id("cold-chain").unwrap();
        assert!(a.tag_rows(cold).windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_fleet_file_names_its_bad_row() {
        let file: FleetFile = serde_saphyr::from_str(
            "sims:\n  - iccid: \"8944500000000000001\"\n  - iccid: \"123\"\n",
        )
        .unwrap();
        let err = Fleet::from_fleet_file(file).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fleet file sims[1].iccid: \"123\" is not 19 to 22 digits starting with 89"
        );
    }
}
