-- Per-enrollment facts that keep journey reports fast and exact. Each is kept in the same
-- transaction as the write that changes it (store/facts.py), so a report reads them instead of
-- aggregating raw touchpoints; store/facts.sql rebuilds them from raw rows.

-- A holdout (control group) enrollment: enrolled, sent nothing, never credited.
alter table enrollments add column holdout boolean not null default false;
-- The first touchpoint of the journey while enrolled (enter_time <= t <= exit_time), and the
-- first that is not a machine-generated open: "engaged" picks one by the journey's
-- exclude_machine_opens, so changing that setting needs no rebuild.
alter table enrollments add column first_touch_time timestamptz;
alter table enrollments add column first_human_touch_time timestamptz;
-- The first goal event matching the journey's goal in force at its time while enrolled,
-- whichever journey was credited (the holdout lift's "goal met").
alter table enrollments add column goal_met_time timestamptz;

-- ORDER_UPDATED events may amend the value of an earlier goal event of the same contact (an
-- order update or refund): the latest amendment's value is the one credited.
alter table goal_events add column amends_event_id text not null default '';
create index goal_events_amending on goal_events (tenant_id, amends_event_id)
    where amends_event_id <> '';

-- The credited touchpoint's time, for time-to-conversion figures.
alter table awards add column touchpoint_time timestamptz;
update awards a set touchpoint_time = t.occur_time
from touchpoints t
where t.tenant_id = a.tenant_id and t.event_id = a.touchpoint_event_id;

-- Each goal conversion's credit per message under the split credit models (credit.py), kept
-- by the same re-decisions as the award it belongs to (one goal award per enrollment).
create table conversion_credits (
    tenant_id text not null,
    enrollment_id text not null,
    message_id text not null,
    contact_id text not null,
    journey_id text not null,
    version integer not null,
    award_time timestamptz not null,
    first_touch double precision not null,
    linear double precision not null,
    position_based double precision not null,
    time_decay double precision not null,
    value_currency text,
    value_micros bigint,
    primary key (tenant_id, enrollment_id, message_id)
);
create index conversion_credits_by_journey on conversion_credits (tenant_id, journey_id, award_time);
create index conversion_credits_by_contact on conversion_credits (tenant_id, contact_id, award_time);

-- The steps and paths an enrollment reached: the first touchpoint, while enrolled, of a message
-- on that step (segment 1) or path (segment 2). A message's step and path are those of the
-- enrollment's version, or of the lowest version holding the message when the enrollment's
-- does not. The enrollment's journey, version, entry and holdout are copied (they never
-- change) so that a report reads its cohort's rows without a join.
create table enrollment_reach (
    tenant_id text not null,
    enrollment_id text not null,
    segment smallint not null,
    key text not null,
    journey_id text not null,
    version integer not null,
    enter_time timestamptz not null,
    holdout boolean not null,
    first_time timestamptz not null,
    primary key (tenant_id, enrollment_id, segment, key)
);
-- Covering: a report reads its cohort's rows from the index alone (measured 831 -> 523 ms p99
-- with the enrollments index below, on a 100k-enrollment journey).
create index enrollment_reach_by_journey on enrollment_reach (tenant_id, journey_id, enter_time)
    include (segment, key, version, holdout, first_time, enrollment_id);

-- For each goal event that went to a journey, the other journeys (and versions) whose
-- participant the contact was at the event's time: "credited elsewhere" in their reports.
-- Kept by re-decisions, like the outcomes.
create table credited_elsewhere (
    tenant_id text not null,
    journey_id text not null,
    version integer not null,
    goal_event_id text not null,
    contact_id text not null,
    occur_time timestamptz not null,
    credited_journey_id text not null,
    primary key (tenant_id, journey_id, version, goal_event_id)
);
create index credited_elsewhere_by_journey on credited_elsewhere (tenant_id, journey_id, occur_time);
create index credited_elsewhere_by_contact on credited_elsewhere (tenant_id, contact_id, occur_time);

-- Touchpoints counted per UTC day, journey, message, version and action, so that a report
-- counts a journey's touchpoints without reading them: whole days come from here, the partial
-- days at a range's edges from the touchpoints. Each writing connection adds to its own shard
-- (its backend pid modulo 4), so concurrent batches do not queue on one hot row.
create table touchpoint_counts (
    tenant_id text not null,
    journey_id text not null,
    day timestamptz not null,
    message_id text not null,
    version integer not null,
    action smallint not null,
    shard smallint not null,
    touchpoints bigint not null,
    primary key (tenant_id, journey_id, day, message_id, version, action, shard)
);
insert into touchpoint_counts
select tenant_id, journey_id, date_bin('1 day', occur_time, timestamptz '2000-01-01 00:00+00'),
    message_id, version, action, 0, count(*)
from touchpoints
group by 1, 2, 3, 4, 5, 6;

-- A report's cohort and participation read a journey's enrollments from this index alone: they
-- lie together in it, where the table scatters them among every journey's.
drop index enrollments_by_journey;
create index enrollments_by_journey on enrollments (tenant_id, journey_id, enter_time)
    include (enrollment_id, contact_id, version, holdout, exit_time, first_touch_time,
        first_human_touch_time, goal_met_time);

-- Existing enrollments: their touchpoint facts from the stored touchpoints.
update enrollments e set
    first_touch_time = f.first_touch_time,
    first_human_touch_time = f.first_human_touch_time
from (
    select e2.tenant_id, e2.enrollment_id,
        min(t.occur_time) as first_touch_time,
        min(t.occur_time) filter (where not (t.machine_generated and t.action = 2))
            as first_human_touch_time
    from enrollments e2
    join touchpoints t on t.tenant_id = e2.tenant_id and t.contact_id = e2.contact_id
        and t.journey_id = e2.journey_id and t.occur_time >= e2.enter_time
        and (e2.exit_time is null or t.occur_time <= e2.exit_time)
    group by e2.tenant_id, e2.enrollment_id
) f
where e.tenant_id = f.tenant_id and e.enrollment_id = f.enrollment_id;
