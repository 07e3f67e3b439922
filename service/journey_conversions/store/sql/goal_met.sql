-- Writes re-decided goal-met times ($3 enrollment ids, $4 times, null for none). A time before
-- the re-decision horizon $2 is final: its goal event was not re-read, so it stays.
-- $1 tenant.
update enrollments e set goal_met_time = k.met
from unnest($3::text[], $4::timestamptz[]) as k(enrollment_id, met)
where e.tenant_id = $1 and e.enrollment_id = k.enrollment_id
    and (e.goal_met_time is null or e.goal_met_time >= $2)
    and e.goal_met_time is distinct from k.met
