-- The cluster as Redis sees it: {nodes, leases}. Nodes whose heartbeat expired and leases
-- that are gone are dropped from the index sets (each removal checked, never blind).
-- ARGV: prefix.
local p = ARGV[1]
local nodes, leases = {}, {}
for _, id in ipairs(redis.call('SMEMBERS', p .. ':nodes')) do
  local n = redis.call('HMGET', p .. ':node:' .. id, 'inc', 'rtmp', 'http', 'beat', 'started', 'seen')
  if n[1] then
    table.insert(nodes, {id, n[1], n[2] or '', n[3] or '', n[4] or '0', n[5] or '0', n[6] or '0'})
  elseif redis.call('EXISTS', p .. ':node:' .. id) == 0 then
    redis.call('SREM', p .. ':nodes', id)
  end
end
for _, stream in ipairs(redis.call('SMEMBERS', p .. ':leases')) do
  local l = redis.call('HMGET', p .. ':lease:' .. stream, 'node', 'inc', 'epoch', 'since')
  if l[1] then
    local alive = redis.call('HGET', p .. ':node:' .. l[1], 'inc') == l[2]
    table.insert(leases, {stream, l[1], l[3], l[4] or '0', alive and '1' or '0'})
  elseif redis.call('EXISTS', p .. ':lease:' .. stream) == 0 then
    redis.call('SREM', p .. ':leases', stream)
  end
end
return {nodes, leases}
