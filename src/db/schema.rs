// Written to match `migrations/` using only the SQL types SQLite and PostgreSQL share,
// so one schema serves both backends through `AnyConnection` (see docs/architecture.md).

diesel::table! {
    event_head (id) {
        id -> Integer,
        seq -> BigInt,
        care_team_version -> BigInt,
    }
}

diesel::table! {
    event_retention (id) {
        id -> Integer,
        pruned_through -> BigInt,
    }
}

diesel::table! {
    events (seq) {
        seq -> BigInt,
        kind -> Text,
        alert_id -> Text,
        patient_id -> Text,
        payload -> Text,
        created_at -> BigInt,
        care_team_version -> BigInt,
    }
}

diesel::table! {
    alerts (id) {
        id -> Text,
        seq -> BigInt,
        last_seq -> BigInt,
        patient_id -> Text,
        severity -> Text,
        kind -> Text,
        title -> Text,
        message -> Text,
        data -> Text,
        source -> Text,
        status -> Text,
        created_by -> Text,
        request_id -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    acknowledgments (seq) {
        seq -> BigInt,
        alert_id -> Text,
        user_id -> Text,
        role -> Text,
        status -> Text,
        note -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    care_team (patient_id, user_id) {
        patient_id -> Text,
        user_id -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    idempotency_keys (principal, idem_key) {
        principal -> Text,
        idem_key -> Text,
        alert_id -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    ack_idempotency_keys (principal, idem_key) {
        principal -> Text,
        idem_key -> Text,
        ack_seq -> BigInt,
        created_at -> BigInt,
    }
}

diesel::joinable!(acknowledgments -> alerts (alert_id));
diesel::allow_tables_to_appear_in_same_query!(
    event_head,
    event_retention,
    events,
    alerts,
    acknowledgments,
    care_team,
    idempotency_keys,
    ack_idempotency_keys,
    deployment,
    skipped_ids
);

diesel::table! {
    deployment (id) {
        id -> Integer,
        deployment_id -> Text,
    }
}

diesel::table! {
    skipped_ids (after_seq) {
        after_seq -> BigInt,
        upto_seq -> BigInt,
        created_at -> BigInt,
    }
}
