-- A journey's rules revision: it moves whenever anything attribution reads of the journey
-- changes (its window, whether machine opens count, its goal history, its conversions' values
-- and trigger histories), so a server may keep the rules it read and reuse them while the
-- revision it finds is the one they were read at (store/rules.py). Kept by triggers, so that
-- no write of the catalog, now or later, can change rules and leave the revision as it was.
--
-- The revision is the id of the transaction that made the change (xid8: cluster-wide, never
-- reused): a counter would come back to a value a rolled-back change had held, with other rules.

alter table journeys
    add column rules_revision bigint not null default pg_current_xact_id()::text::bigint;

create function journey_rules_changed() returns trigger language plpgsql as $$
begin
    new.rules_revision := pg_current_xact_id()::text::bigint;
    return new;
end $$;
create trigger rules_revision before update on journeys
    for each row when (old.window_seconds is distinct from new.window_seconds
        or old.exclude_machine_opens is distinct from new.exclude_machine_opens)
    execute function journey_rules_changed();

-- A goal, conversion or trigger row of a journey written: its journey's revision moves.
create function journey_part_changed() returns trigger language plpgsql as $$
declare
    changed record;
begin
    if tg_op = 'DELETE' then
        changed := old;
    else
        changed := new;
    end if;
    update journeys set rules_revision = pg_current_xact_id()::text::bigint
    where tenant_id = changed.tenant_id and journey_id = changed.journey_id;
    return null;
end $$;
create trigger rules_revision after insert or update or delete on journey_goals
    for each row execute function journey_part_changed();
create trigger rules_revision after insert or update or delete on conversions
    for each row execute function journey_part_changed();
create trigger rules_revision after insert or update or delete on conversion_triggers
    for each row execute function journey_part_changed();
