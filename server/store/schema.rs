//! The portable diesel schema: one table! per table of migrations/{sqlite,postgres}.
//! Both migration trees must produce exactly these columns and types.

diesel::table! {
    sites (id) {
        id -> BigInt,
        name -> Text,
        timezone -> Text,
        lockdown -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    schedules (id) {
        id -> BigInt,
        name -> Text,
        description -> Text,
        holidays -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    schedule_windows (id) {
        id -> BigInt,
        schedule_id -> BigInt,
        position -> Integer,
        cron -> Text,
        duration_min -> Integer,
    }
}

diesel::table! {
    holidays (id) {
        id -> BigInt,
        site_id -> Nullable<BigInt>,
        name -> Text,
        date -> Date,
    }
}

diesel::table! {
    zones (id) {
        id -> BigInt,
        site_id -> BigInt,
        parent_id -> Nullable<BigInt>,
        name -> Text,
        antipassback -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        /// The daily anti-passback reset, "HH:MM" on the site's clock; NULL for none.
        presence_reset -> Nullable<Text>,
    }
}

diesel::table! {
    doors (id) {
        id -> BigInt,
        zone_id -> BigInt,
        name -> Text,
        unlock_ms -> Integer,
        held_open_s -> Integer,
        mode -> Text,
        free_access_schedule_id -> Nullable<BigInt>,
        sensitivity -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    readers (id) {
        id -> BigInt,
        reader_id -> Text,
        door_id -> BigInt,
        protocol -> Text,
        direction -> Text,
        secret -> Text,
        require_signed_events -> Bool,
        modbus_host -> Nullable<Text>,
        modbus_port -> Nullable<Integer>,
        modbus_unit -> Nullable<Integer>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        /// May send bare (v1) events; every other reader must seal them (v2).
        legacy -> Bool,
    }
}

diesel::table! {
    people (id) {
        id -> BigInt,
        employee_id -> Text,
        name -> Text,
        department -> Text,
        title -> Text,
        manager_id -> Nullable<BigInt>,
        person_type -> Text,
        status -> Text,
        valid_from -> Nullable<Timestamp>,
        valid_until -> Nullable<Timestamp>,
        notes -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    credentials (id) {
        id -> BigInt,
        person_id -> BigInt,
        kind -> Text,
        card_uid -> Nullable<Text>,
        facility -> Nullable<Integer>,
        card_number -> Nullable<BigInt>,
        pin_hash -> Nullable<Text>,
        status -> Text,
        valid_until -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    access_levels (id) {
        id -> BigInt,
        name -> Text,
        description -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    access_level_items (id) {
        id -> BigInt,
        level_id -> BigInt,
        door_id -> Nullable<BigInt>,
        zone_id -> Nullable<BigInt>,
        schedule_id -> BigInt,
    }
}

diesel::table! {
    entitlements (id) {
        id -> BigInt,
        person_id -> BigInt,
        level_id -> BigInt,
        granted_by -> Text,
        granted_at -> Timestamp,
        valid_until -> Nullable<Timestamp>,
        justification -> Text,
    }
}

diesel::table! {
    admin_users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
        failed_logins -> Integer,
        locked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    alarm_acks (event_id) {
        event_id -> BigInt,
        acked_by -> Text,
        acked_at -> Timestamp,
    }
}

diesel::table! {
    admin_sessions (id) {
        id -> BigInt,
        token_hash -> Text,
        admin_user_id -> BigInt,
        csrf_token -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
        remote_addr -> Text,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        admin_user_id -> BigInt,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        revoked -> Bool,
        scope -> Text,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        seq -> BigInt,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        entity -> Text,
        entity_id -> Nullable<Text>,
        summary -> Text,
        before_json -> Nullable<Text>,
        after_json -> Nullable<Text>,
        prev_hash -> Text,
        hash -> Text,
        keyed -> Bool,
        requested_by_kind -> Text,
        requested_by_id -> Nullable<BigInt>,
        requested_by_name -> Text,
        on_behalf_of_id -> Nullable<BigInt>,
        on_behalf_of_name -> Nullable<Text>,
        approved_by_id -> Nullable<BigInt>,
        approved_by_name -> Nullable<Text>,
        via -> Text,
        via_detail -> Nullable<Text>,
        hash_version -> Integer,
    }
}

diesel::table! {
    job_runs (job) {
        job -> Text,
        due_at -> Timestamp,
        started_at -> Timestamp,
        duration_ms -> BigInt,
        succeeded -> Bool,
        detail -> Text,
        instance -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    sites,
    schedules,
    schedule_windows,
    holidays,
    zones,
    doors,
    readers,
    people,
    credentials,
    access_levels,
    access_level_items,
    entitlements,
    admin_users,
    admin_sessions,
    alarm_acks,
    api_tokens,
    audit_log,
    events,
);

diesel::joinable!(api_tokens -> admin_users (admin_user_id));
diesel::joinable!(admin_sessions -> admin_users (admin_user_id));
diesel::joinable!(zones -> sites (site_id));
diesel::joinable!(doors -> zones (zone_id));
diesel::joinable!(readers -> doors (door_id));
diesel::joinable!(credentials -> people (person_id));
diesel::joinable!(entitlements -> people (person_id));
diesel::joinable!(entitlements -> access_levels (level_id));
diesel::joinable!(schedule_windows -> schedules (schedule_id));
diesel::joinable!(access_level_items -> access_levels (level_id));

diesel::table! {
    events (id) {
        id -> BigInt,
        at -> Timestamp,
        reader_id -> Nullable<Text>,
        seq -> Nullable<BigInt>,
        reader_ts -> Nullable<Timestamp>,
        kind -> Text,
        door_id -> Nullable<BigInt>,
        person_id -> Nullable<BigInt>,
        credential_id -> Nullable<BigInt>,
        presented -> Nullable<Text>,
        result -> Nullable<Text>,
        deny_code -> Nullable<Text>,
        decision_id -> Nullable<Text>,
        command -> Nullable<Text>,
        detail -> Text,
        /// What a reader's event said (`message::content_digest`): tells a resend from a
        /// reused seq.
        content_digest -> Nullable<BigInt>,
        /// Where the event happened when it happened (doors move between zones).
        site_id -> Nullable<BigInt>,
        zone_id -> Nullable<BigInt>,
        /// The anti-passback zone a swipe's door counted for; presence is rebuilt from it.
        antipassback_zone_id -> Nullable<BigInt>,
        /// `in` or `out`: the swiped reader's direction.
        direction -> Nullable<Text>,
        /// The decision's reason kind, for grants as for denials.
        reason_code -> Nullable<Text>,
        /// The audit sequence number the policy in force was built from.
        policy_version -> Nullable<BigInt>,
        /// NULL until the risk engine has scored the swipe (`risk::live`).
        risk_score -> Nullable<Double>,
        risk_reasons -> Nullable<Text>,
        /// `live` (recorded by this appliance) or `imported` (`gatehouse import --events`).
        origin -> Text,
        /// An imported row's natural key (`io::events_csv`): NULL on live events.
        import_key -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// The highest `seq` recorded per reader (the event log raises it with each batch).
    event_reader_marks (reader_id) {
        reader_id -> Text,
        highest_seq -> BigInt,
    }
}
