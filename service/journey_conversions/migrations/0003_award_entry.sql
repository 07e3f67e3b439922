-- Each award carries its enrollment's entry time and arm (both fixed when the enrollment is
-- made), so that a report's cohort figures read from the journey's awards alone instead of
-- looking up each award's enrollment.
alter table awards add column enter_time timestamptz;
alter table awards add column holdout boolean not null default false;
update awards a set enter_time = e.enter_time, holdout = e.holdout
from enrollments e
where e.tenant_id = a.tenant_id and e.enrollment_id = a.enrollment_id;
alter table awards alter column enter_time set not null;
