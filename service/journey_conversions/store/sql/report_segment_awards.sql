-- The cohort's awards before $4 (treated enrollments that entered in [$3, $4), read from the
-- entry time and arm each award carries), per step and path: goal conversions by the step
-- (segment 1) and path (segment 2) of their credited message (in the enrollment's version, or
-- the lowest version holding it), and named conversions by the step of the mark that awarded
-- them (segment 1, with their conversion id). $1 tenant; $2 journey; $5 version (0: all).
-- Awards are counted per message first, so each message's step and path is looked up once.
with cohort_awards as materialized (
    select a.conversion_id, a.version, a.message_id, a.step_id, count(*) as n
    from awards a
    where a.tenant_id = $1 and a.journey_id = $2 and a.award_time < $4
        and ($5 = 0 or a.version = $5) and a.enter_time >= $3 and a.enter_time < $4
        and not a.holdout
    group by a.conversion_id, a.version, a.message_id, a.step_id
)
select s.segment, s.key, '' as conversion_id, sum(a.n)::bigint as n
from cohort_awards a
cross join lateral (
    select m.step_id, m.path from journey_messages m
    where m.tenant_id = $1 and m.journey_id = $2 and m.message_id = a.message_id
    order by m.version = a.version desc, m.version
    limit 1
) m
cross join lateral (values (1::smallint, m.step_id), (2::smallint, m.path)) as s(segment, key)
where a.conversion_id = '' and s.key <> ''
group by s.segment, s.key
union all
select 1::smallint, a.step_id, a.conversion_id, sum(a.n)::bigint
from cohort_awards a
where a.conversion_id <> '' and a.step_id <> ''
group by a.step_id, a.conversion_id
