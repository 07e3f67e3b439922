-- Per step (segment 1) and path (segment 2): the cohort's treated enrollments (entered in
-- [$3, $4)) that reached it before $4, and how many of those converted before $4: from the
-- cohort counts (facts 11 to 14 of reach_facts, migration 0005) of whole UTC days, and the
-- reach rows they count wrongly for this range read themselves (entered in the partial day at
-- the range's start, or a fact on or after the day of its end), as in report_enrollments.sql.
-- $1 tenant; $2 journey; $5 version (0: all).
with days as materialized (
    select report_day($3) as start_day, report_day($3) + interval '24 hours' as start_day_end,
        report_day($4) as end_day
),
counted as (
    select c.fact, c.key, c.n::integer
    from cohort_counts c
    where c.tenant_id = $1 and c.journey_id = $2 and c.day >= $3
        and c.day + interval '24 hours' <= $4 and c.fact between 11 and 14 and not c.holdout
        and ($5 = 0 or c.version = $5)
    union all
    select f.fact, r.key, s.n
    from days d
    join enrollment_reach r on r.tenant_id = $1 and r.journey_id = $2 and (
        r.fact_time >= d.end_day
        or (r.enter_time >= d.start_day and r.enter_time < d.start_day_end))
    cross join lateral reach_facts(r.segment, r.first_time, r.converted_time) f
    cross join lateral (values
        (1, r.enter_time >= $3 and r.enter_time < $4 and f.since < $4),
        (-1, report_day(r.enter_time) >= $3
            and report_day(r.enter_time) + interval '24 hours' <= $4)
    ) as s(n, counts)
    where s.counts and not r.holdout and ($5 = 0 or r.version = $5)
)
select (case when fact < 13 then fact - 10 else fact - 12 end)::smallint as segment, key,
    sum(case when fact < 13 then n else 0 end) as reached,
    sum(case when fact >= 13 then n else 0 end) as converted
from counted
group by 1, 2
having sum(n) <> 0
