-- An award made or changed by a re-decision, with its enrollment's entry time and arm (fixed
-- for the enrollment's life, so a change leaves them alone). $1 to $15: decisions._award_row.
insert into awards (
    tenant_id, enrollment_id, conversion_id, contact_id, journey_id, version, source,
    award_time, goal_event_id, touchpoint_event_id, message_id, step_id, value_currency,
    value_micros, touchpoint_time, enter_time, holdout)
select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, e.enter_time, e.holdout
from enrollments e
where e.tenant_id = $1 and e.enrollment_id = $2
on conflict (tenant_id, enrollment_id, conversion_id) do update set
    source = excluded.source, award_time = excluded.award_time,
    goal_event_id = excluded.goal_event_id, touchpoint_event_id = excluded.touchpoint_event_id,
    message_id = excluded.message_id, step_id = excluded.step_id,
    value_currency = excluded.value_currency, value_micros = excluded.value_micros,
    touchpoint_time = excluded.touchpoint_time
