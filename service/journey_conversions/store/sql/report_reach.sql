-- Per step (segment 1) and path (segment 2): the cohort's treated enrollments (entered in
-- [$3, $4)) that reached it before $4, and how many of those converted before $4: from the
-- cohort counts (facts 11 to 14 of reach_facts, migration 0005) of the days of entry from $8
-- (ReportQuery.count_edge) to the one holding its end, and the reach rows they count wrongly
-- for this range read themselves (entered in the span [$6, $7) between $8 and $3, or a fact at
-- or after its end), as in report_enrollments.sql.
-- $1 tenant; $2 journey; $5 version (0: all).
with counted as (
    select c.fact, c.key, c.n::integer
    from cohort_counts c
    where c.tenant_id = $1 and c.journey_id = $2 and c.day >= $8 and c.day < $4
        and c.fact between 11 and 14 and not c.holdout
        and ($5 = 0 or c.version = $5)
    union all
    select f.fact, r.key, s.n
    from enrollment_reach r
    cross join lateral reach_facts(r.segment, r.first_time, r.converted_time) f
    cross join lateral (values
        (1, r.enter_time >= $3 and r.enter_time < $4 and f.since < $4),
        (-1, report_day(r.enter_time) >= $8 and report_day(r.enter_time) < $4)
    ) as s(n, counts)
    where r.tenant_id = $1 and r.journey_id = $2
        and (r.fact_time >= $4 or (r.enter_time >= $6 and r.enter_time < $7))
        and ((r.enter_time >= $6 and r.enter_time < $7) or r.enter_time >= $4 or f.since >= $4)
        and s.counts and not r.holdout and ($5 = 0 or r.version = $5)
)
select (case when fact < 13 then fact - 10 else fact - 12 end)::smallint as segment, key,
    sum(case when fact < 13 then n else 0 end) as reached,
    sum(case when fact >= 13 then n else 0 end) as converted
from counted
group by 1, 2
having sum(n) <> 0
