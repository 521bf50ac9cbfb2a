//! The event store conformance suite: the same tests against PostgreSQL and SQLite,
//! both real (a throwaway PostgreSQL cluster, a SQLite file in a temp dir).

// A panic is how a test reports failure, and a catch-all arm how it names the unexpected.
#![allow(clippy::unwrap_used, clippy::wildcard_enum_match_arm)]

mod counter;
mod harness;
mod postgres_only;
mod sqlite_only;
mod suite;

/// Instantiates every suite test once per backend.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    crate::suite::$test(crate::harness::Backend::postgres().await).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    crate::suite::$test(crate::harness::Backend::sqlite().await).await;
                }
            )*
        }
    };
}

conformance!(
    appends_and_reads_back_every_field,
    expected_version_is_enforced_and_conflicts_write_nothing,
    racing_exact_appends_have_exactly_one_winner,
    racing_any_appends_all_land_in_order,
    appends_arriving_together_each_get_their_own_answer,
    reappending_the_same_events_stores_them_once,
    reused_event_ids_with_other_content_are_refused,
    bad_input_gets_a_typed_error_and_writes_nothing,
    reads_the_log_by_position_and_by_checkpoint,
    follower_sees_every_event_once_under_concurrent_writers,
    shared_reads_still_see_what_committed_before_them,
    followers_sharing_reads_each_see_the_whole_log_once_in_order,
    reads_see_another_processs_appends_a_moment_later,
    hash_chain_detects_edited_payload,
    hash_chain_detects_edited_metadata,
    hash_chain_detects_deleted_event,
    hash_chain_detects_reordered_events,
    trusted_head_detects_removed_tail,
    history_cannot_be_changed_without_disabling_the_guard,
    handler_decides_appends_and_refuses_without_writing,
    handler_retries_a_lost_race_with_fresh_state,
    remembered_states_are_checked_against_the_stream,
    states_decided_in_a_transaction_are_remembered_once_committed,
    a_transaction_starts_from_a_remembered_state,
    a_load_starts_from_a_remembered_state,
    a_command_decides_on_the_state_its_caller_read,
    a_command_on_a_stream_named_afresh_defers_to_one_that_exists,
    handler_writes_a_repeated_command_once,
    handler_loads_state_as_of_a_date,
    upcasters_bring_old_events_to_the_current_shape,
    a_command_id_names_one_request,
    forgotten_command_keys_still_name_their_first_request,
    snapshots_are_used_and_ignored_when_outdated,
    stores_in_two_processes_never_overwrite_each_other,
    transaction_commits_events_and_checkpoint_together,
    refused_append_leaves_the_transaction_usable,
    handler_appends_inside_a_callers_transaction,
    commands_in_one_transaction_see_each_others_events,
    savepoints_undo_part_of_a_transaction,
    a_command_id_is_known_inside_a_transaction,
    projections_catch_up_once_and_rebuild_from_the_start,
    a_request_waits_for_a_projection_to_reach_its_write,
    read_models_follow_together_and_notice_a_moved_checkpoint,
    checkpoints_move_together_only_from_where_they_all_stand,
    a_failing_read_model_holds_the_others_not_back,
    runners_of_one_read_model_apply_each_event_once,
    a_rebuild_beside_a_runner_applies_each_event_once,
    histories_come_from_the_batch_or_the_store,
    state_cache_drops_streams_the_log_moves_on,
    personal_data_is_sealed_and_erased_with_its_key,
    without_its_keys_personal_data_is_refused_and_nothing_written,
    a_stream_with_personal_data_is_never_snapshotted,
    an_aws_kms_key_wraps_every_data_key,
);
