-- Recomputes the steps and paths some enrollments reached from the stored touchpoints (their
-- old rows are deleted first, see facts.py): for a new enrollment, after an exit, and
-- for a rebuild. See enrollment_reach in migration 0002 for which step a message is on.
-- $1 tenant; $2 enrollment ids.
insert into enrollment_reach (tenant_id, enrollment_id, segment, key, journey_id, version,
    enter_time, holdout, converted_time, first_time)
select $1, p.enrollment_id, s.segment, s.key, p.journey_id, p.version, p.enter_time, p.holdout,
    p.converted_time, min(t.occur_time)
from enrollments p
join touchpoints t on t.tenant_id = $1 and t.contact_id = p.contact_id
    and t.journey_id = p.journey_id and t.occur_time >= p.enter_time
    and (p.exit_time is null or t.occur_time <= p.exit_time)
cross join lateral (
    select m.step_id, m.path from journey_messages m
    where m.tenant_id = $1 and m.journey_id = p.journey_id and m.message_id = t.message_id
    order by m.version = p.version desc, m.version
    limit 1
) m
cross join lateral (values (1::smallint, m.step_id), (2::smallint, m.path)) as s(segment, key)
where p.tenant_id = $1 and p.enrollment_id = any($2::text[]) and s.key <> ''
group by p.enrollment_id, s.segment, s.key, p.journey_id, p.version, p.enter_time, p.holdout,
    p.converted_time
