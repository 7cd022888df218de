//! When a SimGroup is reconciled: on its own changes that are worth it (spec, annotations,
//! labels, finalizers, deletion; not its status writes), on a change of its CarrierAccount's
//! verdict, on a change of another group whose selection overlaps (claims), and when the
//! reconcile asks to come back (the drift check, a pending action's backoff).

use std::collections::HashSet;
use std::sync::Arc;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::{Predicate, PredicateConfig, predicates};
use kube::runtime::{WatchStreamExt, watcher};

use super::reconcile::reconcile;
use crate::controller::resource_metrics::Shown;
use crate::controller::{Context, GroupStores, api_for};
use simfleet_api::{CarrierAccount, SimGroup};

/// Runs the SimGroup controller.
pub async fn run(
    context: Arc<Context>,
    namespace: Option<String>,
    labels: Option<String>,
    stop: simfleet_core::shutdown::Stop,
) {
    let groups: Api<SimGroup> = api_for(&context.client, namespace.as_deref());
    let mut config = watcher::Config::default();
    if let Some(labels) = labels {
        config = config.labels(&labels);
    }
    let accounts: Api<CarrierAccount> = api_for(&context.client, namespace.as_deref());
    // The group's own changes that are worth a reconcile: spec (generation), annotations (pause,
    // approval), labels and finalizers; its deletion too, since the API server bumps the
    // generation when deletion starts. Its status writes are not: each would be a full
    // observation (on emnify, a listing of the organisation).
    let (reader, writer) = reflector::store();
    let own_changes = watcher(groups.clone(), config.clone())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(predicates::labels)
                .combine(predicates::finalizers),
            PredicateConfig::default(),
        );
    let controller = Controller::for_stream(own_changes, reader);
    let peers = controller.store();
    let users = controller.store();
    context
        .metrics
        .watch("SimGroup", controller.store(), |group: &SimGroup| {
            let status = group.status.as_ref();
            Shown {
                conditions: status.map_or(&[], |s| &s.conditions[..]),
                oldest_pending: status
                    .and_then(|s| s.pending_actions.iter().map(|a| a.submitted_at.0).min()),
            }
        });
    // Peers re-plan on a change of a group's claims only: its spec, or the start of its
    // deletion (a group being deleted claims nothing; the generation moves then too).
    let peer_specs = watcher(groups, config)
        .default_backoff()
        .touched_objects()
        .predicate_filter(predicates::generation, PredicateConfig::default());
    let (account_reader, account_writer) = reflector::store();
    let account_changes = crate::carrier_account::account_changes(accounts, account_writer);
    let _ = context.group_stores.set(GroupStores {
        groups: controller.store(),
        accounts: account_reader,
    });
    let controller = controller
        .reconcile_on(context.peer_wakeups.take())
        .watches_stream(peer_specs, move |changed: SimGroup| {
            overlapping(&peers, &changed)
        })
        .watches_stream(account_changes, move |account: CarrierAccount| {
            users
                .state()
                .into_iter()
                .filter(|g| {
                    g.namespace() == account.namespace()
                        && g.spec.carrier_ref.name == account.name_any()
                })
                .map(|g| ObjectRef::from_obj(&*g))
                .collect::<Vec<_>>()
        });
    crate::controller::drive(controller, reconcile, context, stop).await;
}

/// The other groups, in any namespace (one carrier organisation can serve several), that list
/// a SIM `changed` also lists, or that select by tag or are selected against by tag (a tag can
/// select any SIM). A woken group whose claims did not change does not read the carrier again.
fn overlapping(store: &Store<SimGroup>, changed: &SimGroup) -> Vec<ObjectRef<SimGroup>> {
    let iccids: HashSet<&String> = changed.spec.selector.iccids.iter().flatten().collect();
    let devices: HashSet<&u64> = changed.spec.selector.device_ids.iter().flatten().collect();
    let tags: HashSet<&String> = changed.spec.selector.tags.iter().flatten().collect();
    store
        .state()
        .into_iter()
        .filter(|g| g.namespace() != changed.namespace() || g.name_any() != changed.name_any())
        .filter(|g| {
            g.spec
                .selector
                .iccids
                .iter()
                .flatten()
                .any(|i| iccids.contains(i))
                || g.spec
                    .selector
                    .device_ids
                    .iter()
                    .flatten()
                    .any(|d| devices.contains(d))
                // A tag can select any SIM: a tag group and any other re-plan each other.
                || !tags.is_empty()
                || g.spec.selector.tags.as_ref().is_some_and(|t| !t.is_empty())
        })
        .map(|g| ObjectRef::from_obj(&*g))
        .collect()
}
