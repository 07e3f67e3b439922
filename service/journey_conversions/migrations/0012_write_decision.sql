-- What a re-decision writes (store/decisions.py redecide), in one round trip instead of four to
-- six: the differences between the rows its contacts' last decisions derived and the new ones
-- (goal outcomes, credits, credited elsewhere, awards: the fresh rows upserted, the gone rows
-- deleted by key), its enrollments' goal-met and goal-conversion times, and the conversion
-- events its award changes make. Each part is skipped when it has no rows. The statements run
-- in order, each seeing the ones before: the enrollments read their goal awards as just written,
-- and the outbox head's row lock (which serializes a tenant's writers) is taken last, so it is
-- held only from here to COMMIT. A function, as contact_histories is (migration 0010), for a
-- generic plan of each statement.
--
-- Rows travel as arrays of each table's row type; their tenant_id is ignored for _tenant, and
-- the awards' enter_time and holdout are their enrollment's (fixed for its life).

create function append_conversion_events(_tenant text, _event_types smallint[], _awards text[],
    _channel text)
returns void
language plpgsql volatile
as $$
-- Appends conversion events at the tenant's next positions: the head row moves past them (its
-- row lock, held until COMMIT, keeps position order commit order), the events take the
-- positions in the order given (awards as JSON text), and listeners on _channel are told when
-- (and only if) the transaction commits.
declare
    _last bigint;
begin
    if cardinality(_event_types) > 0 then
        insert into outbox_heads as h (tenant_id, last_position)
        values (_tenant, cardinality(_event_types))
        on conflict (tenant_id) do update set last_position = h.last_position + excluded.last_position
        returning last_position into _last;
        insert into conversion_events (tenant_id, position, event_type, award)
        select _tenant, _last - cardinality(_event_types) + e.n, e.event_type, e.award::jsonb
        from unnest(_event_types, _awards) with ordinality as e(event_type, award, n);
        perform pg_notify(_channel, _tenant);
    end if;
end
$$;

create function write_decision(_tenant text, _horizon timestamptz,
    _outcomes goal_outcomes[], _outcomes_gone goal_outcomes[],
    _credits conversion_credits[], _credits_gone conversion_credits[],
    _elsewhere credited_elsewhere[], _elsewhere_gone credited_elsewhere[],
    _awards awards[], _awards_gone awards[],
    _enrollments text[], _goal_met timestamptz[], _conversion_changed boolean[],
    _event_types smallint[], _events text[], _channel text)
returns void
language plpgsql volatile
set plan_cache_mode = force_generic_plan
as $$
begin
    if cardinality(_outcomes_gone) > 0 then
        delete from goal_outcomes t using unnest(_outcomes_gone) as g
        where t.tenant_id = _tenant and t.goal_event_id = g.goal_event_id;
    end if;
    if cardinality(_outcomes) > 0 then
        insert into goal_outcomes (tenant_id, goal_event_id, contact_id, occur_time, status,
            journey_id, enrollment_id, touchpoint_event_id, message_id, touchpoint_time)
        select _tenant, r.goal_event_id, r.contact_id, r.occur_time, r.status, r.journey_id,
            r.enrollment_id, r.touchpoint_event_id, r.message_id, r.touchpoint_time
        from unnest(_outcomes) as r
        on conflict (tenant_id, goal_event_id) do update set
            contact_id = excluded.contact_id, occur_time = excluded.occur_time,
            status = excluded.status, journey_id = excluded.journey_id,
            enrollment_id = excluded.enrollment_id,
            touchpoint_event_id = excluded.touchpoint_event_id,
            message_id = excluded.message_id, touchpoint_time = excluded.touchpoint_time;
    end if;

    if cardinality(_credits_gone) > 0 then
        delete from conversion_credits t using unnest(_credits_gone) as g
        where t.tenant_id = _tenant and t.enrollment_id = g.enrollment_id
            and t.message_id = g.message_id;
    end if;
    if cardinality(_credits) > 0 then
        insert into conversion_credits (tenant_id, enrollment_id, message_id, contact_id,
            journey_id, version, award_time, first_touch, linear, position_based, time_decay,
            value_currency, value_micros)
        select _tenant, r.enrollment_id, r.message_id, r.contact_id, r.journey_id, r.version,
            r.award_time, r.first_touch, r.linear, r.position_based, r.time_decay,
            r.value_currency, r.value_micros
        from unnest(_credits) as r
        on conflict (tenant_id, enrollment_id, message_id) do update set
            contact_id = excluded.contact_id, journey_id = excluded.journey_id,
            version = excluded.version, award_time = excluded.award_time,
            first_touch = excluded.first_touch, linear = excluded.linear,
            position_based = excluded.position_based, time_decay = excluded.time_decay,
            value_currency = excluded.value_currency, value_micros = excluded.value_micros;
    end if;

    if cardinality(_elsewhere_gone) > 0 then
        delete from credited_elsewhere t using unnest(_elsewhere_gone) as g
        where t.tenant_id = _tenant and t.journey_id = g.journey_id and t.version = g.version
            and t.goal_event_id = g.goal_event_id;
    end if;
    if cardinality(_elsewhere) > 0 then
        insert into credited_elsewhere (tenant_id, journey_id, version, goal_event_id,
            contact_id, occur_time, credited_journey_id)
        select _tenant, r.journey_id, r.version, r.goal_event_id, r.contact_id, r.occur_time,
            r.credited_journey_id
        from unnest(_elsewhere) as r
        on conflict (tenant_id, journey_id, version, goal_event_id) do update set
            contact_id = excluded.contact_id, occur_time = excluded.occur_time,
            credited_journey_id = excluded.credited_journey_id;
    end if;

    if cardinality(_awards_gone) > 0 then
        delete from awards t using unnest(_awards_gone) as g
        where t.tenant_id = _tenant and t.enrollment_id = g.enrollment_id
            and t.conversion_id = g.conversion_id;
    end if;
    if cardinality(_awards) > 0 then
        insert into awards (tenant_id, enrollment_id, conversion_id, contact_id, journey_id,
            version, source, award_time, goal_event_id, touchpoint_event_id, message_id, step_id,
            value_currency, value_micros, touchpoint_time, enter_time, holdout)
        select _tenant, a.enrollment_id, a.conversion_id, a.contact_id, a.journey_id, a.version,
            a.source, a.award_time, a.goal_event_id, a.touchpoint_event_id, a.message_id,
            a.step_id, a.value_currency, a.value_micros, a.touchpoint_time, e.enter_time,
            e.holdout
        from unnest(_awards) as a
        join enrollments e on e.tenant_id = _tenant and e.enrollment_id = a.enrollment_id
        on conflict (tenant_id, enrollment_id, conversion_id) do update set
            source = excluded.source, award_time = excluded.award_time,
            goal_event_id = excluded.goal_event_id,
            touchpoint_event_id = excluded.touchpoint_event_id,
            message_id = excluded.message_id, step_id = excluded.step_id,
            value_currency = excluded.value_currency, value_micros = excluded.value_micros,
            touchpoint_time = excluded.touchpoint_time;
    end if;

    -- Each enrollment's goal-met time (the report's holdout lift; a stored time before the
    -- horizon is final: its goal event was not re-read), and, where its goal conversion changed,
    -- its goal award's time (or none), copied to its reach rows too, where the cohort counts
    -- read it (migration 0005). One new row version of an enrollment that both met its goal and
    -- converted, and one run of the cohort counts' trigger.
    if cardinality(_enrollments) > 0 then
        with decided as (
            select k.enrollment_id, k.met, k.conversion_changed, a.award_time
            from unnest(_enrollments, _goal_met, _conversion_changed)
                as k(enrollment_id, met, conversion_changed)
            left join awards a on k.conversion_changed and a.tenant_id = _tenant
                and a.enrollment_id = k.enrollment_id and a.conversion_id = ''
        ),
        reach as (
            update enrollment_reach r set converted_time = d.award_time
            from decided d
            where d.conversion_changed and r.tenant_id = _tenant
                and r.enrollment_id = d.enrollment_id
                and r.converted_time is distinct from d.award_time
        )
        update enrollments e set
            goal_met_time = case when e.goal_met_time is null or e.goal_met_time >= _horizon
                then d.met else e.goal_met_time end,
            converted_time = case when d.conversion_changed then d.award_time
                else e.converted_time end
        from decided d
        where e.tenant_id = _tenant and e.enrollment_id = d.enrollment_id
            and ((d.met is distinct from e.goal_met_time
                    and (e.goal_met_time is null or e.goal_met_time >= _horizon))
                or (d.conversion_changed and d.award_time is distinct from e.converted_time));
    end if;

    perform append_conversion_events(_tenant, _event_types, _events, _channel);
end
$$;
