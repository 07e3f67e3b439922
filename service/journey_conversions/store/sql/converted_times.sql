-- Copies each enrollment's goal conversion time (its goal award's, or none) to the enrollment
-- and its reach rows, where the cohort counts read it (migration 0005): after a re-decision
-- changed its awards, in one statement for all of them. $1 tenant; $2 enrollment ids.
with converted as materialized (
    select k.enrollment_id, a.award_time
    from unnest($2::text[]) as k(enrollment_id)
    left join awards a on a.tenant_id = $1 and a.enrollment_id = k.enrollment_id
        and a.conversion_id = ''
),
reach as (
    update enrollment_reach r set converted_time = c.award_time
    from converted c
    where r.tenant_id = $1 and r.enrollment_id = c.enrollment_id
        and r.converted_time is distinct from c.award_time
)
update enrollments e set converted_time = c.award_time
from converted c
where e.tenant_id = $1 and e.enrollment_id = c.enrollment_id
    and e.converted_time is distinct from c.award_time
