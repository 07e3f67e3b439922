-- Recomputes the first- and last-touch facts (migration 0005) of some enrollments from the
-- stored touchpoints: for a new enrollment (touchpoints may have arrived before it), after an
-- exit (which can end the period its touches lay in), and for a rebuild.
-- $1 tenant; $2 enrollment ids.
update enrollments e set
    first_touch_time = f.any_time,
    first_human_touch_time = f.human_time,
    last_touch_time = f.any_last,
    last_human_touch_time = f.human_last
from (
    select p.enrollment_id,
        min(t.occur_time) as any_time,
        min(t.occur_time) filter (where not (t.machine_generated and t.action = 2)) as human_time,
        latest_day_first(t.occur_time) as any_last,
        latest_day_first(t.occur_time) filter (where not (t.machine_generated and t.action = 2))
            as human_last
    from enrollments p
    left join touchpoints t on t.tenant_id = $1 and t.contact_id = p.contact_id
        and t.journey_id = p.journey_id and t.occur_time >= p.enter_time
        and (p.exit_time is null or t.occur_time <= p.exit_time)
    where p.tenant_id = $1 and p.enrollment_id = any($2::text[])
    group by p.enrollment_id
) f
where e.tenant_id = $1 and e.enrollment_id = f.enrollment_id
    and (e.first_touch_time, e.first_human_touch_time, e.last_touch_time, e.last_human_touch_time)
        is distinct from (f.any_time, f.human_time, f.any_last, f.human_last)
