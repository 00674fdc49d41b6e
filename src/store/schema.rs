//! Diesel schema, written with portable types only (Text ids, naive-UTC Timestamp,
//! Binary), so that one query code path serves PostgreSQL and SQLite.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        username_key -> Text,
        password_hash -> Text,
        roles -> Text,
        scopes -> Text,
        claims -> Text,
        enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        tenant_id -> Text,
        device_epoch -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        status -> Text,
        public_jwk -> Text,
        private_key -> Nullable<Binary>,
        created_at -> Timestamp,
        activated_at -> Nullable<Timestamp>,
        retired_at -> Nullable<Timestamp>,
        deactivated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        client_id -> Nullable<Text>,
        scope -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
        legacy_client -> Bool,
        generation -> BigInt,
        refreshed_at -> Timestamp,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        last_ip -> Nullable<Text>,
        dpop_jkt -> Nullable<Text>,
    }
}

diesel::table! {
    legacy_refresh_tokens (token_hash) {
        token_hash -> Text,
        session_id -> Text,
        generation -> BigInt,
    }
}

diesel::table! {
    revocations (kind, subject) {
        kind -> Text,
        subject -> Text,
        cutoff -> BigInt,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(legacy_refresh_tokens -> sessions (session_id));

diesel::table! {
    api_keys (id) {
        id -> Text,
        key_hash -> Text,
        prefix -> Text,
        name -> Text,
        owner_id -> Text,
        scopes -> Text,
        enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        last_used_ip -> Nullable<Text>,
        tenant_id -> Text,
    }
}

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    clients (client_id) {
        client_id -> Text,
        tenant_id -> Text,
        name -> Text,
        kind -> Text,
        secret_hash -> Nullable<Text>,
        grant_types -> Text,
        scopes -> Text,
        audiences -> Text,
        enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        target -> Nullable<Text>,
        ip -> Nullable<Text>,
        outcome -> Text,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    markers (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    ticket_redemptions (jti) {
        jti -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    security_events (generation, idx) {
        generation -> BigInt,
        idx -> Integer,
        tenant_id -> Nullable<Text>,
        event_type -> Text,
        payload -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    event_cursors (api_key_id) {
        api_key_id -> Text,
        generation -> BigInt,
        idx -> Integer,
    }
}

diesel::table! {
    event_acks (api_key_id, generation, idx) {
        api_key_id -> Text,
        generation -> BigInt,
        idx -> Integer,
    }
}

diesel::joinable!(api_keys -> users (owner_id));
diesel::joinable!(users -> tenants (tenant_id));
diesel::joinable!(clients -> tenants (tenant_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    signing_keys,
    sessions,
    legacy_refresh_tokens,
    revocations,
    api_keys,
    audit_events,
    markers,
    tenants,
    clients,
    ticket_redemptions,
    security_events,
    event_cursors,
    event_acks
);
