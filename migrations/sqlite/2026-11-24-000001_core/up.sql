-- Gatehouse core policy, admin identity and audit log (SQLite).
-- Keep in step with migrations/postgres/2026-11-24-000001_core/up.sql: same tables, same names.

CREATE TABLE sites (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    timezone TEXT NOT NULL,
    lockdown BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    holidays TEXT NOT NULL DEFAULT 'closed',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE schedule_windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id BIGINT NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    cron TEXT NOT NULL,
    duration_min INTEGER NOT NULL
);
CREATE INDEX schedule_windows_schedule ON schedule_windows(schedule_id);

CREATE TABLE holidays (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id BIGINT REFERENCES sites(id),
    name TEXT NOT NULL,
    date DATE NOT NULL
);
CREATE INDEX holidays_date ON holidays(date);

CREATE TABLE zones (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id BIGINT NOT NULL REFERENCES sites(id),
    parent_id BIGINT REFERENCES zones(id),
    name TEXT NOT NULL,
    antipassback TEXT NOT NULL DEFAULT 'off',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (site_id, name)
);
CREATE INDEX zones_parent ON zones(parent_id);

CREATE TABLE doors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    zone_id BIGINT NOT NULL REFERENCES zones(id),
    name TEXT NOT NULL UNIQUE,
    unlock_ms INTEGER NOT NULL,
    held_open_s INTEGER NOT NULL,
    mode TEXT NOT NULL DEFAULT 'normal',
    free_access_schedule_id BIGINT REFERENCES schedules(id),
    sensitivity TEXT NOT NULL DEFAULT 'normal',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX doors_zone ON doors(zone_id);

CREATE TABLE readers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reader_id TEXT NOT NULL UNIQUE,
    door_id BIGINT NOT NULL REFERENCES doors(id),
    protocol TEXT NOT NULL,
    direction TEXT NOT NULL,
    secret TEXT NOT NULL,
    require_signed_events BOOLEAN NOT NULL DEFAULT 0,
    modbus_host TEXT,
    modbus_port INTEGER,
    modbus_unit INTEGER,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX readers_door ON readers(door_id);

CREATE TABLE people (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    employee_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    department TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    manager_id BIGINT REFERENCES people(id),
    person_type TEXT NOT NULL,
    status TEXT NOT NULL,
    valid_from TIMESTAMP,
    valid_until TIMESTAMP,
    notes TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX people_department ON people(department);
CREATE INDEX people_manager ON people(manager_id);

CREATE TABLE credentials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id BIGINT NOT NULL REFERENCES people(id),
    kind TEXT NOT NULL,
    card_uid TEXT UNIQUE,
    facility INTEGER,
    card_number BIGINT,
    pin_hash TEXT,
    status TEXT NOT NULL,
    valid_until TIMESTAMP,
    last_used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (facility, card_number)
);
CREATE INDEX credentials_person ON credentials(person_id);

CREATE TABLE access_levels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE access_level_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    level_id BIGINT NOT NULL REFERENCES access_levels(id) ON DELETE CASCADE,
    door_id BIGINT REFERENCES doors(id),
    zone_id BIGINT REFERENCES zones(id),
    schedule_id BIGINT NOT NULL REFERENCES schedules(id),
    CHECK ((door_id IS NULL) <> (zone_id IS NULL))
);
CREATE INDEX access_level_items_level ON access_level_items(level_id);
CREATE INDEX access_level_items_door ON access_level_items(door_id);
CREATE INDEX access_level_items_zone ON access_level_items(zone_id);
CREATE INDEX access_level_items_schedule ON access_level_items(schedule_id);

CREATE TABLE entitlements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id BIGINT NOT NULL REFERENCES people(id),
    level_id BIGINT NOT NULL REFERENCES access_levels(id),
    granted_by TEXT NOT NULL,
    granted_at TIMESTAMP NOT NULL,
    valid_until TIMESTAMP,
    justification TEXT NOT NULL DEFAULT '',
    UNIQUE (person_id, level_id)
);
CREATE INDEX entitlements_level ON entitlements(level_id);

CREATE TABLE admin_users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    admin_user_id BIGINT NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    last_used_at TIMESTAMP,
    revoked BOOLEAN NOT NULL DEFAULT 0
);
CREATE INDEX api_tokens_admin ON api_tokens(admin_user_id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq BIGINT NOT NULL UNIQUE,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT,
    summary TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_entity ON audit_log(entity, entity_id);
