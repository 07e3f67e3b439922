-- Contacts' advisory locks (store/locks.py) taken by a function, so that a statement with work
-- of its own takes them in the same round trip: `(select lock_contacts($1, $n))`, an InitPlan
-- run once. The keys are those store/locks.py always took: hashtextextended(tenant || chr(1) ||
-- contact, 0), a replica of an earlier version locks the same keys. They are taken in ascending
-- key order, so two transactions sharing contacts cannot deadlock. Returns how many were taken.

create or replace function lock_contacts(tenant text, contacts text[])
returns bigint language plpgsql as $$
declare
    taken bigint;
begin
    select count(pg_advisory_xact_lock(k)) into taken from (
        select distinct hashtextextended(tenant || chr(1) || c, 0) as k
        from unnest(contacts) as c
        order by k
    ) as keys;
    return taken;
end
$$;
