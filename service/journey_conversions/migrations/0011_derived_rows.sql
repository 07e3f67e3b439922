-- The rows a re-decision derived before, from `since` on, of its contacts: what it compares
-- its new decision with (store/derived.py), so that only the differences are written. Read in
-- the same statement as the contacts' histories (contact_histories, migration 0010), instead
-- of one round trip per table (goal outcomes, awards, credits, credited elsewhere), each
-- planned anew at every call. A function for the same reason as contact_histories: a generic
-- plan, partitions pruned at execution. Each part is an array of the table's row type.

create function derived_rows(_tenant text, _contacts text[], _since timestamptz)
returns table (stored_outcomes goal_outcomes[], stored_awards awards[],
    stored_credits conversion_credits[], stored_elsewhere credited_elsewhere[])
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
begin
    return query
    select
        (select array_agg(o) from goal_outcomes o
            where o.tenant_id = _tenant and o.contact_id = any(_contacts)
                and o.occur_time >= _since),
        (select array_agg(a) from awards a
            where a.tenant_id = _tenant and a.contact_id = any(_contacts)
                and a.award_time >= _since),
        (select array_agg(c) from conversion_credits c
            where c.tenant_id = _tenant and c.contact_id = any(_contacts)
                and c.award_time >= _since),
        (select array_agg(x) from credited_elsewhere x
            where x.tenant_id = _tenant and x.contact_id = any(_contacts)
                and x.occur_time >= _since);
end
$$;
