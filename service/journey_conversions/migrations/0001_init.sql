-- journey-conversions schema, version 1.
-- Every key starts with tenant_id: hot queries filter by tenant first, and the tables can be
-- distributed by tenant later.

create table journeys (
    tenant_id text not null,
    journey_id text not null,
    display_name text not null default '',
    purpose smallint not null default 0,
    window_seconds bigint not null,
    exclude_machine_opens boolean not null default false,
    create_time timestamptz not null default now(),
    update_time timestamptz not null default now(),
    primary key (tenant_id, journey_id)
);

-- Every goal a journey has had; seq orders the changes. effective_time is null for the first
-- goal (in force from the start); criterion is null when the goal was removed.
create table journey_goals (
    tenant_id text not null,
    journey_id text not null,
    seq integer not null,
    effective_time timestamptz,
    criterion jsonb,
    primary key (tenant_id, journey_id, seq),
    foreign key (tenant_id, journey_id) references journeys
);

create table journey_versions (
    tenant_id text not null,
    journey_id text not null,
    version integer not null,
    create_time timestamptz not null default now(),
    primary key (tenant_id, journey_id, version),
    foreign key (tenant_id, journey_id) references journeys
);

create table journey_messages (
    tenant_id text not null,
    journey_id text not null,
    version integer not null,
    message_id text not null,
    channel smallint not null,
    step_id text not null default '',
    path text not null default '',
    primary key (tenant_id, journey_id, version, message_id),
    foreign key (tenant_id, journey_id, version) references journey_versions
);

create table conversions (
    tenant_id text not null,
    journey_id text not null,
    conversion_id text not null,
    name text not null,
    name_key text not null,  -- lower-cased, spaces removed: names are unique on it
    value_currency text,
    value_micros bigint,
    award_on_goal boolean not null default false,
    revision integer not null default 1,
    create_time timestamptz not null default now(),
    update_time timestamptz not null default now(),
    primary key (tenant_id, journey_id, conversion_id),
    unique (tenant_id, journey_id, name_key),
    foreign key (tenant_id, journey_id) references journeys
);

-- Every revision of a conversion definition, as it was saved.
create table conversion_revisions (
    tenant_id text not null,
    journey_id text not null,
    conversion_id text not null,
    revision integer not null,
    definition jsonb not null,
    save_time timestamptz not null default now(),
    primary key (tenant_id, journey_id, conversion_id, revision)
);

-- Trigger history of a conversion, like journey_goals.
create table conversion_triggers (
    tenant_id text not null,
    journey_id text not null,
    conversion_id text not null,
    seq integer not null,
    effective_time timestamptz,
    criterion jsonb,
    primary key (tenant_id, journey_id, conversion_id, seq)
);

-- Idempotency of request-style writes: the first response is kept and returned to repeats.
create table requests (
    tenant_id text not null,
    method text not null,
    request_id text not null,
    payload_hash bytea not null,
    response bytea,
    create_time timestamptz not null default now(),
    primary key (tenant_id, method, request_id)
);

create table enrollments (
    tenant_id text not null,
    enrollment_id text not null,
    contact_id text not null,
    journey_id text not null,
    version integer not null,
    enter_time timestamptz not null,
    exit_time timestamptz,
    exit_reason smallint not null default 0,
    primary key (tenant_id, enrollment_id),
    foreign key (tenant_id, journey_id, version) references journey_versions
);
create index enrollments_by_contact on enrollments (tenant_id, contact_id);
create index enrollments_by_journey on enrollments (tenant_id, journey_id, enter_time);

create table touchpoints (
    tenant_id text not null,
    event_id text not null,
    contact_id text not null,
    journey_id text not null,
    version integer not null,
    message_id text not null,
    channel smallint not null,
    action smallint not null,
    occur_time timestamptz not null,
    machine_generated boolean not null default false,
    primary key (tenant_id, event_id)
);
-- The window lookup of attribution: an index-only scan bounded by the window.
create index touchpoints_by_contact on touchpoints (tenant_id, contact_id, occur_time desc)
    include (journey_id, message_id, action, machine_generated);
create index touchpoints_by_journey on touchpoints (tenant_id, journey_id, occur_time);

create table goal_events (
    tenant_id text not null,
    event_id text not null,
    contact_id text not null,
    event_type smallint not null,
    occur_time timestamptz not null,
    attribute_name text not null default '',
    attribute_value text not null default '',
    list_id text not null default '',
    message_id text not null default '',
    url text not null default '',
    form_id text not null default '',
    product_ids text[] not null default '{}',
    value_currency text,
    value_micros bigint,
    primary key (tenant_id, event_id)
);
create index goal_events_by_contact on goal_events (tenant_id, contact_id, occur_time);

-- Convert and Evaluate-goal steps that awarded a named conversion.
create table step_marks (
    tenant_id text not null,
    source smallint not null,
    event_id text not null,
    conversion_id text not null,
    enrollment_id text not null,
    contact_id text not null,
    step_id text not null default '',
    mark_time timestamptz not null,
    primary key (tenant_id, source, event_id, conversion_id)
);
create index step_marks_by_contact on step_marks (tenant_id, contact_id, mark_time);

-- The attribution outcome of each goal event, as decided from the current set of events.
create table goal_outcomes (
    tenant_id text not null,
    goal_event_id text not null,
    contact_id text not null,
    occur_time timestamptz not null,
    status smallint not null,
    journey_id text not null default '',
    enrollment_id text not null default '',
    touchpoint_event_id text not null default '',
    message_id text not null default '',
    touchpoint_time timestamptz,
    primary key (tenant_id, goal_event_id)
);
create index goal_outcomes_by_contact on goal_outcomes (tenant_id, contact_id, occur_time);
create index goal_outcomes_by_journey on goal_outcomes (tenant_id, journey_id, occur_time);

-- Current awards: at most one per enrollment and conversion ('' is the goal conversion).
create table awards (
    tenant_id text not null,
    enrollment_id text not null,
    conversion_id text not null,
    contact_id text not null,
    journey_id text not null,
    version integer not null,
    source smallint not null,
    award_time timestamptz not null,
    goal_event_id text not null default '',
    touchpoint_event_id text not null default '',
    message_id text not null default '',
    step_id text not null default '',
    value_currency text,
    value_micros bigint,
    primary key (tenant_id, enrollment_id, conversion_id)
);
create index awards_by_contact on awards (tenant_id, contact_id, award_time);
create index awards_by_journey on awards (tenant_id, journey_id, award_time);

-- The ordered outbox of conversion events. Positions are dense per tenant and assigned under
-- the row lock of outbox_heads, held until commit, so position order is commit order.
create table outbox_heads (
    tenant_id text primary key,
    last_position bigint not null
);

create table conversion_events (
    tenant_id text not null,
    position bigint not null,
    event_type smallint not null,
    award jsonb not null,
    commit_time timestamptz not null default now(),
    primary key (tenant_id, position)
);
