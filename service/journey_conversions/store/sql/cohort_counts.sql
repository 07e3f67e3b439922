-- The cohort of a report in one pass over its enrollments: per version and arm (treated or
-- holdout), the enrollments that entered in [$3, $4), how many were engaged, converted and met
-- the goal before $4, and (with grouping sets) per version and over all the versions asked for
-- ($5, 0: all; rows where version is null) the time conversions took and, per currency, their
-- value. percentile_cont interpolates linearly between the closest ranks (Hyndman and Fan's
-- definition 7); times are seconds from entry and from the credited touchpoint.
-- $1 tenant; $2 journey; $6 whether machine-generated opens are excluded. Counts cover every
-- version (the baseline may not be one asked for); times and values only the versions asked for.
with cohort as (
    select e.version, e.holdout, e.enter_time, e.goal_met_time,
        case when $6 then e.first_human_touch_time else e.first_touch_time end as engaged_at,
        a.award_time as converted_at, a.touchpoint_time, a.value_currency, a.value_micros
    from enrollments e
    left join awards a on a.tenant_id = $1 and a.journey_id = $2
        and a.enrollment_id = e.enrollment_id and a.conversion_id = '' and a.award_time < $4
    where e.tenant_id = $1 and e.journey_id = $2 and e.enter_time >= $3 and e.enter_time < $4
)
select 'counts' as part, version, holdout,
    count(*) as entered,
    count(*) filter (where engaged_at < $4) as engaged,
    count(converted_at) as converted,
    count(converted_at) filter (where engaged_at < $4) as converted_engaged,
    count(*) filter (where goal_met_time < $4) as goal_met,
    null::float8[] as from_entry, null::float8[] as from_last_touch,
    null::text as currency, null::numeric as micros
from cohort
group by version, holdout
union all
select 'times', version, null, count(converted_at), null, null, null, null,
    percentile_cont(array[0.5, 0.9]) within group (
        order by extract(epoch from converted_at - enter_time)),
    percentile_cont(array[0.5, 0.9]) within group (
        order by extract(epoch from converted_at - touchpoint_time)),
    null, null
from cohort
where ($5 = 0 or version = $5) and not holdout and converted_at is not null
group by grouping sets ((version), ())
union all
select 'values', version, null, null, null, null, null, null, null, null,
    value_currency, sum(value_micros)
from cohort
where ($5 = 0 or version = $5) and not holdout and converted_at is not null
    and value_currency is not null
group by version, value_currency
