-- Goal events in a range credited to an enrollment that had already converted.
-- $1 tenant; $2 journey; $3 version (0: all); [$4, $5) the range.
select count(*) from goal_outcomes o join enrollments e
  on e.tenant_id = o.tenant_id and e.enrollment_id = o.enrollment_id
where o.tenant_id = $1 and o.journey_id = $2 and o.status = 2 and ($3 = 0 or e.version = $3)
  and o.occur_time >= $4 and o.occur_time < $5
