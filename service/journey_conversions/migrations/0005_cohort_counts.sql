-- Cohort counts: a journey's enrollments counted per UTC day, fact, version and arm, kept by
-- triggers in the same statement as any write that changes an enrollment or a reach row, so a
-- report sums a few rows per day instead of reading every enrollment of the journey. A report
-- adds, from the raw rows, the enrollments whose facts lie in the partial days at its range's
-- edges or at or after its end (store/sql/report_enrollments.sql); those are few.

-- The goal conversion awarded to the enrollment, if any, copied from awards whenever a
-- re-decision changes them (store/sql/converted_times.sql).
alter table enrollments add column converted_time timestamptz;
alter table enrollment_reach add column converted_time timestamptz;
update enrollments e set converted_time = a.award_time
from awards a
where a.tenant_id = e.tenant_id and a.enrollment_id = e.enrollment_id and a.conversion_id = '';
update enrollment_reach r set converted_time = e.converted_time
from enrollments e
where e.tenant_id = r.tenant_id and e.enrollment_id = r.enrollment_id
    and e.converted_time is not null;

-- The last touch of an enrollment, so that "engaged in a range" (touched in it while enrolled)
-- comes from the cohort counts too, instead of from each active enrollment's touchpoints.
-- Kept at day grain to keep writes rare: the earliest touchpoint, while enrolled, of the latest
-- UTC day the enrollment was touched (its first touch of that day). It moves only when a later
-- day is touched (or an earlier touchpoint of that day arrives late), not with every touchpoint
-- of a flood. For a range [S, E): one at or after S (and before E) proves a touch in the range;
-- one before S on S's day may have been followed by one in it (the report reads those
-- enrollments' touchpoints); one on an earlier day rules the range out.
alter table enrollments add column last_touch_time timestamptz;
alter table enrollments add column last_human_touch_time timestamptz;

-- The latest time any fact of the enrollment became true: a report ending before it must
-- correct what the counts say of the enrollment.
alter table enrollments add column fact_time timestamptz generated always as (greatest(enter_time,
    exit_time, first_touch_time, first_human_touch_time, goal_met_time, converted_time,
    last_touch_time, last_human_touch_time)) stored;
alter table enrollment_reach add column fact_time timestamptz
    generated always as (greatest(first_time, converted_time)) stored;
create index enrollments_by_fact_time on enrollments (tenant_id, journey_id, fact_time);
create index enrollments_by_exit on enrollments (tenant_id, journey_id, exit_time)
    where exit_time is not null;
create index enrollment_reach_by_fact_time on enrollment_reach (tenant_id, journey_id, fact_time);
create index enrollments_by_last_touch on enrollments (tenant_id, journey_id, last_touch_time)
    where last_touch_time is not null;
create index enrollments_by_last_human_touch on enrollments
    (tenant_id, journey_id, last_human_touch_time) where last_human_touch_time is not null;

-- The UTC day an instant lies in (the days of touchpoint_counts too).
create function report_day(t timestamptz) returns timestamptz
language sql immutable parallel safe
as $$ select date_bin('24 hours', t, timestamptz '2000-01-01 00:00+00') $$;

-- The earliest of the latest day: the state function of latest_day_first, and how a stored
-- value meets new touchpoints (`later`).
create function later_day_first(kept timestamptz, later timestamptz) returns timestamptz
language sql immutable parallel safe
as $$
    select case
        when kept is null then later
        when later is null then kept
        when report_day(later) > report_day(kept) then later
        when report_day(later) = report_day(kept) then least(kept, later)
        else kept
    end
$$;
create aggregate latest_day_first(timestamptz) (sfunc = later_day_first, stype = timestamptz);

-- The last touches of the enrollments already there (before the triggers below exist: the
-- counts of every row are taken at the end).
update enrollments e set
    last_touch_time = f.any_time,
    last_human_touch_time = f.human_time
from (
    select p.tenant_id, p.enrollment_id,
        latest_day_first(t.occur_time) as any_time,
        latest_day_first(t.occur_time) filter (where not (t.machine_generated and t.action = 2))
            as human_time
    from enrollments p
    join touchpoints t on t.tenant_id = p.tenant_id and t.contact_id = p.contact_id
        and t.journey_id = p.journey_id and t.occur_time >= p.enter_time
        and (p.exit_time is null or t.occur_time <= p.exit_time)
    group by p.tenant_id, p.enrollment_id
) f
where e.tenant_id = f.tenant_id and e.enrollment_id = f.enrollment_id;

-- What an enrollment counts for: each fact, the instant whose day it is counted under (its
-- basis), and the instant from which it holds (a report ending earlier leaves it out).
--   1 entered; 2 engaged (touched while enrolled); 3 engaged by a touch that is not a
--   machine-generated open; 4 converted (goal conversion awarded); 5 converted and engaged;
--   6 converted and engaged by a human touch; 7 goal met: all counted on the day of entry;
--   20 exited, on the day of exit; 23 last touched and 24 last touched by a human, on the day
--   of that (day-grain) last touch.
create function enrollment_facts(enter_time timestamptz, exit_time timestamptz,
    first_touch timestamptz, first_human_touch timestamptz, goal_met timestamptz,
    converted timestamptz, last_touch timestamptz, last_human_touch timestamptz)
returns table (fact smallint, basis timestamptz, since timestamptz)
language sql immutable parallel safe
as $$
    select f.fact, f.basis, f.since
    from (values
        (1::smallint, enter_time, enter_time),
        (2::smallint, enter_time, first_touch),
        (3::smallint, enter_time, first_human_touch),
        (4::smallint, enter_time, converted),
        (5::smallint, enter_time, case when converted is not null and first_touch is not null
            then greatest(converted, first_touch) end),
        (6::smallint, enter_time, case when converted is not null
            and first_human_touch is not null then greatest(converted, first_human_touch) end),
        (7::smallint, enter_time, goal_met),
        (20::smallint, exit_time, exit_time),
        (23::smallint, last_touch, last_touch),
        (24::smallint, last_human_touch, last_human_touch)
    ) as f(fact, basis, since)
    where f.since is not null
$$;

-- What a reach row counts for, on the day of its enrollment's entry, under its step or path:
-- 11 reached a step, 12 reached a path (segment + 10); 13 and 14 the same, and converted.
create function reach_facts(segment smallint, first_time timestamptz, converted timestamptz)
returns table (fact smallint, since timestamptz)
language sql immutable parallel safe
as $$
    select f.fact, f.since
    from (values
        ((10 + segment)::smallint, first_time),
        ((12 + segment)::smallint, greatest(first_time, converted))
    ) as f(fact, since)
    where f.since is not null and (f.fact < 13 or converted is not null)
$$;

create table cohort_counts (
    tenant_id text not null,
    journey_id text not null,
    day timestamptz not null,
    fact smallint not null,
    key text not null,
    version integer not null,
    holdout boolean not null,
    -- Each writing connection adds to its own shard (backend pid modulo 4), as in
    -- touchpoint_counts, so concurrent writes do not queue on one hot row.
    shard smallint not null,
    n bigint not null,
    primary key (tenant_id, journey_id, day, fact, key, version, holdout, shard)
);

-- Adds the facts of rows written and takes away those of the rows they replaced. The counts are
-- upserted in key order, so two statements lock the rows they share in the same order.
create function count_enrollment_facts(added enrollments[], removed enrollments[]) returns void
language sql as $$
    insert into cohort_counts (tenant_id, journey_id, day, fact, key, version, holdout, shard, n)
    select c.tenant_id, c.journey_id, report_day(c.basis), c.fact, '', c.version, c.holdout,
        (pg_backend_pid() % 4)::smallint, sum(c.n)
    from (
        select r.tenant_id, r.journey_id, r.version, r.holdout, f.fact, f.basis, r.n
        from (select *, 1 as n from unnest(added) union all select *, -1 from unnest(removed))
            as r
        cross join lateral enrollment_facts(r.enter_time, r.exit_time, r.first_touch_time,
            r.first_human_touch_time, r.goal_met_time, r.converted_time, r.last_touch_time,
            r.last_human_touch_time) f
    ) c
    group by 1, 2, 3, 4, 5, 6, 7
    having sum(c.n) <> 0
    order by 1, 2, 3, 4, 5, 6, 7
    on conflict (tenant_id, journey_id, day, fact, key, version, holdout, shard) do update
        set n = cohort_counts.n + excluded.n
$$;

create function count_reach_facts(added enrollment_reach[], removed enrollment_reach[])
returns void language sql as $$
    insert into cohort_counts (tenant_id, journey_id, day, fact, key, version, holdout, shard, n)
    select c.tenant_id, c.journey_id, report_day(c.enter_time), c.fact, c.key, c.version,
        c.holdout, (pg_backend_pid() % 4)::smallint, sum(c.n)
    from (
        select r.tenant_id, r.journey_id, r.enter_time, r.key, r.version, r.holdout, f.fact, r.n
        from (select *, 1 as n from unnest(added) union all select *, -1 from unnest(removed))
            as r
        cross join lateral reach_facts(r.segment, r.first_time, r.converted_time) f
    ) c
    group by 1, 2, 3, 4, 5, 6, 7
    having sum(c.n) <> 0
    order by 1, 2, 3, 4, 5, 6, 7
    on conflict (tenant_id, journey_id, day, fact, key, version, holdout, shard) do update
        set n = cohort_counts.n + excluded.n
$$;

-- Statement triggers: one upsert of counts per statement, however many rows it wrote; a
-- statement that wrote no row (a flood's touchpoints mostly change no enrollment) costs one
-- probe. A transition table is named only by the event that has it: a function per event.
create function enrollments_inserted() returns trigger language plpgsql as $$
begin
    if exists (select from new_rows) then
        perform count_enrollment_facts(array(select row(r.*)::enrollments from new_rows r), '{}');
    end if;
    return null;
end $$;
create function enrollments_updated() returns trigger language plpgsql as $$
begin
    if exists (select from new_rows) then
        perform count_enrollment_facts(array(select row(r.*)::enrollments from new_rows r),
            array(select row(r.*)::enrollments from old_rows r));
    end if;
    return null;
end $$;
create function enrollments_deleted() returns trigger language plpgsql as $$
begin
    if exists (select from old_rows) then
        perform count_enrollment_facts('{}', array(select row(r.*)::enrollments from old_rows r));
    end if;
    return null;
end $$;
create trigger cohort_counts_insert after insert on enrollments
    referencing new table as new_rows for each statement execute function enrollments_inserted();
create trigger cohort_counts_update after update on enrollments
    referencing old table as old_rows new table as new_rows
    for each statement execute function enrollments_updated();
create trigger cohort_counts_delete after delete on enrollments
    referencing old table as old_rows for each statement execute function enrollments_deleted();

create function reach_inserted() returns trigger language plpgsql as $$
begin
    if exists (select from new_rows) then
        perform count_reach_facts(array(select row(r.*)::enrollment_reach from new_rows r), '{}');
    end if;
    return null;
end $$;
create function reach_updated() returns trigger language plpgsql as $$
begin
    if exists (select from new_rows) then
        perform count_reach_facts(array(select row(r.*)::enrollment_reach from new_rows r),
            array(select row(r.*)::enrollment_reach from old_rows r));
    end if;
    return null;
end $$;
create function reach_deleted() returns trigger language plpgsql as $$
begin
    if exists (select from old_rows) then
        perform count_reach_facts('{}',
            array(select row(r.*)::enrollment_reach from old_rows r));
    end if;
    return null;
end $$;
create trigger cohort_counts_insert after insert on enrollment_reach
    referencing new table as new_rows for each statement execute function reach_inserted();
create trigger cohort_counts_update after update on enrollment_reach
    referencing old table as old_rows new table as new_rows
    for each statement execute function reach_updated();
create trigger cohort_counts_delete after delete on enrollment_reach
    referencing old table as old_rows for each statement execute function reach_deleted();

-- The counts of the rows already there.
select count_enrollment_facts(array(select e from enrollments e), '{}');
select count_reach_facts(array(select r from enrollment_reach r), '{}');
