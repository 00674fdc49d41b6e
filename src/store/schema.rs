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
    }
}

diesel::allow_tables_to_appear_in_same_query!(users, signing_keys);
