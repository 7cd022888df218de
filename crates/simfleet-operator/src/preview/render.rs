//! Printing a plan: tables for people, and the CSV of affected SIMs and devices.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{PlanArgs, PlanReport};

/// Writes rows of a table (the first is the header) as `kubectl get` prints them: no borders,
/// columns padded to the widest cell and two spaces apart, never wrapped.
fn write_table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    for row in rows {
        table.add_row(row.clone());
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The plan as tables, then the problems and a summary line.
pub fn table(out: &mut impl Write, report: &PlanReport, args: &PlanArgs) -> std::io::Result<()> {
    if !report.errors.is_empty() {
        writeln!(
            out,
            "{} in the manifests (nothing was planned):",
            crate::plan::numbers::count(report.errors.len() as u64, "problem")
        )?;
        for e in &report.errors {
            let at = match e.document {
                Some(index) => format!("{}#{index}", e.file),
                None => e.file.clone(),
            };
            let object = e
                .object
                .as_deref()
                .map(|o| format!(" {o}:"))
                .unwrap_or_default();
            // A message that names its file already (the YAML parser's) is not prefixed again.
            if e.message.starts_with(&e.file) && e.object.is_none() {
                writeln!(out, "  {}", e.message)?;
            } else {
                writeln!(out, "  {at}:{object} {}", e.message)?;
            }
        }
        return Ok(());
    }
    if !report.sim_groups.is_empty() {
        let mut rows = vec![
            [
                "SIMGROUP",
                "STATE",
                "SELECTED",
                "IN STATE",
                "TO CHANGE",
                "ACTIONS",
                "PENDING",
                "PAUSED-BY-SYSTEM",
                "INELIGIBLE",
                "CONFLICTS",
                "SCHEDULE",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for g in &report.sim_groups {
            let schedule = match (&g.error, &g.held, g.schedule.as_slice()) {
                (Some(err), _, _) => format!("error: {err}"),
                (_, Some(held), _) => format!("held: {held}"),
                (_, _, []) => "-".into(),
                (_, _, [only]) => only.clone(),
                (_, _, [first, .., last]) if first == "now" => "all now".into(),
                (_, _, [first, .., last]) => format!("{first} .. {last}"),
            };
            rows.push(vec![
                g.name.clone(),
                g.state.clone(),
                g.selected.to_string(),
                g.in_state.to_string(),
                g.to_change.to_string(),
                g.actions.to_string(),
                g.pending.to_string(),
                g.paused_by_system.to_string(),
                g.ineligible.to_string(),
                g.conflicts.to_string(),
                schedule,
            ]);
        }
        write_table(out, &rows)?;
        for g in &report.sim_groups {
            if let Some(lookup) = &g.lookup {
                writeln!(out, "{}: listed SIMs looked up by {lookup}", g.name)?;
            }
        }
        writeln!(out)?;
    }
    if !report.data_quotas.is_empty() {
        let mut rows = vec![
            [
                "DATAQUOTA",
                "MODE",
                "DEVICES",
                "TO SET",
                "TO TOP UP",
                "UNCHANGED",
                "NO QUOTA NOW",
                "INELIGIBLE",
                "EXPIRY",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for q in &report.data_quotas {
            let expiry = match &q.error {
                Some(err) => format!("error: {err}"),
                None => q.expiry.clone().unwrap_or_else(|| "-".into()),
            };
            rows.push(vec![
                q.name.clone(),
                q.mode.clone(),
                q.devices.to_string(),
                q.to_set.to_string(),
                q.to_top_up.to_string(),
                q.unchanged.to_string(),
                q.without_quota.to_string(),
                q.ineligible.to_string(),
                expiry,
            ]);
        }
        write_table(out, &rows)?;
        writeln!(out)?;
    }
    for skipped in &report.skipped_documents {
        writeln!(out, "skipped (not a simfleet kind): {skipped}")?;
    }
    for group in &report.sim_groups {
        for warning in &group.warnings {
            writeln!(out, "warning: SimGroup {}: {warning}", group.name)?;
        }
    }
    for account in &report.accounts {
        writeln!(out, "{account}")?;
    }
    let resources = report.sim_groups.len() + report.data_quotas.len();
    let failed = report
        .sim_groups
        .iter()
        .filter(|g| g.error.is_some())
        .count()
        + report
            .data_quotas
            .iter()
            .filter(|q| q.error.is_some())
            .count();
    write!(
        out,
        "{} changes in all (SIM state changes plus quota sets and top-ups)",
        report.total_changes
    )?;
    if failed > 0 {
        write!(
            out,
            "; {failed} of {resources} resources could not be planned (see their errors above), so the count leaves them out"
        )?;
    }
    write!(out, "; nothing was changed")?;
    if let Some(path) = &args.csv {
        write!(out, "; affected SIMs and devices in {}", path.display())?;
    }
    writeln!(out)
}

/// The CSV of affected SIMs and devices (RFC 4180, by the `csv` crate), written as they are
/// found (a large fleet is never held whole).
pub(crate) struct CsvWriter {
    path: PathBuf,
    out: csv::Writer<File>,
}

impl CsvWriter {
    /// Creates the file and writes the header.
    pub fn create(path: &Path) -> Result<Self, String> {
        let out =
            csv::Writer::from_path(path).map_err(|e| format!("--csv {}: {e}", path.display()))?;
        let mut writer = Self {
            path: path.to_owned(),
            out,
        };
        writer.record([
            "kind", "resource", "iccid", "deviceId", "current", "planned",
        ])?;
        Ok(writer)
    }

    fn record<'a>(&mut self, fields: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
        self.out
            .write_record(fields)
            .map_err(|e| format!("writing {}: {e}", self.path.display()))
    }

    /// One affected SIM or device.
    pub(crate) fn row(
        &mut self,
        kind: &str,
        resource: &str,
        iccid: &str,
        device_id: Option<u64>,
        current: &str,
        planned: &str,
    ) -> Result<(), String> {
        let device_id = device_id.map(|d| d.to_string()).unwrap_or_default();
        self.record([kind, resource, iccid, device_id.as_str(), current, planned])
    }

    /// Flushes the file.
    pub fn finish(mut self) -> Result<(), String> {
        self.out
            .flush()
            .map_err(|e| format!("writing {}: {e}", self.path.display()))
    }
}
