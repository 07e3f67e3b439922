-- The goal event that met the goal of enrollment $2 by $3, when retention has dropped it: the
-- enrollment's goal-met time and its contact's goal outcomes are kept, the event is not (its id
-- is gone from goal_event_ids). None when the goal was not met by then, or its event is kept
-- (the caller read the kept events itself).
-- $1 tenant.
select o.goal_event_id
from enrollments e
join goal_outcomes o on o.tenant_id = e.tenant_id and o.contact_id = e.contact_id
    and o.occur_time = e.goal_met_time
where e.tenant_id = $1 and e.enrollment_id = $2 and e.goal_met_time <= $3
    and not exists (
        select 1 from goal_event_ids i where i.tenant_id = $1 and i.event_id = o.goal_event_id)
order by o.goal_event_id
limit 1
