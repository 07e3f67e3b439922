-- What attribution needs of each journey (catalog.load_rules), in one round trip: its window,
-- whether machine opens count, its goal history, and its conversions with their values and
-- trigger histories, histories in definition order (seq). Times travel in JSON as ISO text.
-- $1 tenant; $2 journey ids.
select j.journey_id, j.window_seconds, j.exclude_machine_opens,
    (select coalesce(jsonb_agg(jsonb_build_object(
            'effective_time', g.effective_time, 'criterion', g.criterion) order by g.seq), '[]')
        from journey_goals g
        where g.tenant_id = j.tenant_id and g.journey_id = j.journey_id) as goals,
    (select coalesce(jsonb_agg(jsonb_build_object(
            'conversion_id', c.conversion_id,
            'value_currency', c.value_currency,
            'value_micros', c.value_micros,
            'triggers', (select coalesce(jsonb_agg(jsonb_build_object(
                    'effective_time', t.effective_time, 'criterion', t.criterion) order by t.seq),
                    '[]')
                from conversion_triggers t
                where t.tenant_id = c.tenant_id and t.journey_id = c.journey_id
                    and t.conversion_id = c.conversion_id)
        ) order by c.conversion_id), '[]')
        from conversions c
        where c.tenant_id = j.tenant_id and c.journey_id = j.journey_id) as conversions
from journeys j
where j.tenant_id = $1 and j.journey_id = any($2::text[])
