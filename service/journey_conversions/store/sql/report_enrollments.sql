-- The journey's enrollments per version and arm (treated or holdout), for both the
-- participation summary and the cohort of the range [$3, $4), from the cohort counts (migration
-- 0005), each figure a count of one fact (enrollment_facts) whose basis lies in an interval and
-- that holds before $4:
--   participation: active = entered before $4 less exited before $3; exited in the range;
--   last touched in the range (day grain, migration 0005: with report_engaged_edges.sql, the
--   engaged);
--   the cohort (entered in the range): entered, engaged, converted, converted and engaged, goal
--   met.
-- The counts hold UTC days: each fact counted, whatever its time, on the day of its basis. They
-- are taken as in the range from the day $8 to the one holding the end (partial: for a range
-- ending now, its facts are all before the end), and as before it up to $8. $8 is the start of
-- the day holding $3 or of the next one, whichever is nearer (ReportQuery.count_edge), so the
-- counts are wrong for this range only for facts with a basis between $8 and $3, the span
-- [$6, $7), or at or after its end (for a range ending now: hardly any). Those enrollments are
-- read themselves: each adds what it counts for in the range and takes away what the counts
-- hold of it; an enrollment read needlessly adds and takes away the same.
-- $1 tenant; $2 journey; $5 whether machine-generated opens are excluded; [$6, $7) the span
-- (given so that the planner reads the enrollments through their indexes). Every version is
-- counted (the cohort's baseline may be one not asked for): the caller picks the versions.
with counted as (
    -- counts of one (day, fact, version, arm, shard) fit an integer, so their sums fit a bigint
    select c.version, c.holdout, c.fact, c.n::integer,
        c.day >= $8 and c.day < $4 as in_range,
        c.day < $8 as before_start,
        c.day < $4 as before_end
    from cohort_counts c
    where c.tenant_id = $1 and c.journey_id = $2 and c.day < $4 and c.key = ''
    union all
    select e.version, e.holdout, f.fact, s.n, s.in_range, s.before_start, s.before_end
    from enrollments e
    cross join lateral enrollment_facts(e.enter_time, e.exit_time, e.first_touch_time,
        e.first_human_touch_time, e.goal_met_time, e.converted_time, e.last_touch_time,
        e.last_human_touch_time) f
    cross join lateral (values
        (1, f.basis >= $3 and f.basis < $4 and f.since < $4, f.basis < $3 and f.since < $4,
            f.basis < $4 and f.since < $4),
        (-1, report_day(f.basis) >= $8 and report_day(f.basis) < $4,
            report_day(f.basis) < $8, report_day(f.basis) < $4)
    ) as s(n, in_range, before_start, before_end)
    where e.tenant_id = $1 and e.journey_id = $2 and (
        e.fact_time >= $4
        or (e.enter_time >= $6 and e.enter_time < $7)
        or (e.exit_time >= $6 and e.exit_time < $7)
        or (e.last_touch_time >= $6 and e.last_touch_time < $7)
        or (e.last_human_touch_time >= $6 and e.last_human_touch_time < $7))
        -- the only facts the counts can hold wrongly for this range (the others add and take
        -- away the same)
        and ((f.basis >= $6 and f.basis < $7) or f.basis >= $4 or f.since >= $4)
)
select version, holdout,
    sum(case when fact = 1 and before_end then n when fact = 20 and before_start then -n
        else 0 end) as active,
    sum(case when fact = 20 and in_range then n else 0 end) as exited,
    sum(case when fact = (case when $5 then 24 else 23 end) and in_range then n else 0 end)
        as last_touched,
    sum(case when fact = 1 and in_range then n else 0 end) as entered,
    sum(case when fact = (case when $5 then 3 else 2 end) and in_range then n else 0 end)
        as engaged,
    sum(case when fact = 4 and in_range then n else 0 end) as converted,
    sum(case when fact = (case when $5 then 6 else 5 end) and in_range then n else 0 end)
        as converted_engaged,
    sum(case when fact = 7 and in_range then n else 0 end) as goal_met
from counted
group by version, holdout
