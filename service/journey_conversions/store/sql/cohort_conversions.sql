-- How long the cohort's goal conversions took, per version (and, where version is null, over
-- all of them): percentile_cont interpolates linearly between the closest ranks (Hyndman and
-- Fan's definition 7). Seconds, from entry and from the credited touchpoint.
-- $1 tenant; $2 journey; [$3, $4) the entry range, conversions before $4; $5 version (0: all).
select e.version, count(*) as conversions,
    percentile_cont(array[0.5, 0.9]) within group (
        order by extract(epoch from a.award_time - e.enter_time)) as from_entry,
    percentile_cont(array[0.5, 0.9]) within group (
        order by extract(epoch from a.award_time - a.touchpoint_time)) as from_last_touch
from enrollments e
join awards a on a.tenant_id = e.tenant_id and a.enrollment_id = e.enrollment_id
    and a.conversion_id = ''
where e.tenant_id = $1 and e.journey_id = $2 and ($5 = 0 or e.version = $5)
    and e.enter_time >= $3 and e.enter_time < $4 and a.award_time < $4
group by grouping sets ((e.version), ())
