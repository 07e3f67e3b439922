-- Goal events in a range credited to an enrollment that had already converted.
-- $1 tenant; $2 journey; $3 version (0: all); [$4, $5) the range. Outcomes do not carry the
-- version: only a report of one version looks up the enrollments (with $3 = 0 the custom plan
-- drops the subquery, so all versions read the outcomes alone).
select count(*) from goal_outcomes o
where o.tenant_id = $1 and o.journey_id = $2 and o.status = 2
  and o.occur_time >= $4 and o.occur_time < $5
  and ($3 = 0 or exists (
    select 1 from enrollments e
    where e.tenant_id = o.tenant_id and e.enrollment_id = o.enrollment_id and e.version = $3))
