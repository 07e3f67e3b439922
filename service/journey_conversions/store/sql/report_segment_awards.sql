-- The cohort's awards before $4, per step and path: goal conversions by the step (segment 1)
-- and path (segment 2) of their credited message (in the enrollment's version, or the lowest
-- version holding it), and named conversions by the step of the mark that awarded them (segment
-- 1, with their conversion id). $1 tenant; $2 journey; [$3, $4) the entry range; $5 version.
select s.segment, s.key, '' as conversion_id, count(*) as n
from awards a
join enrollments e on e.tenant_id = $1 and e.journey_id = $2 and e.enrollment_id = a.enrollment_id
cross join lateral (
    select m.step_id, m.path from journey_messages m
    where m.tenant_id = $1 and m.journey_id = $2 and m.message_id = a.message_id
    order by m.version = e.version desc, m.version
    limit 1
) m
cross join lateral (values (1::smallint, m.step_id), (2::smallint, m.path)) as s(segment, key)
where a.tenant_id = $1 and a.journey_id = $2 and a.conversion_id = '' and a.award_time < $4
    and ($5 = 0 or e.version = $5) and e.enter_time >= $3 and e.enter_time < $4
    and not e.holdout and s.key <> ''
group by s.segment, s.key
union all
select 1::smallint, a.step_id, a.conversion_id, count(*)
from awards a
join enrollments e on e.tenant_id = $1 and e.journey_id = $2 and e.enrollment_id = a.enrollment_id
where a.tenant_id = $1 and a.journey_id = $2 and a.conversion_id <> '' and a.step_id <> ''
    and a.award_time < $4 and ($5 = 0 or e.version = $5) and e.enter_time >= $3
    and e.enter_time < $4 and not e.holdout
group by a.step_id, a.conversion_id
