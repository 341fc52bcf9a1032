-- Gives a lease back if it is still the caller's (same node, incarnation and epoch).
-- ARGV: prefix, node id, incarnation, then (stream, epoch) pairs. Returns how many it released.
local p, id, inc = ARGV[1], ARGV[2], ARGV[3]
local released = 0
for i = 4, #ARGV, 2 do
  local stream = ARGV[i]
  local lk = p .. ':lease:' .. stream
  local l = redis.call('HMGET', lk, 'node', 'inc', 'epoch')
  if l[1] == id and l[2] == inc and l[3] == ARGV[i + 1] then
    redis.call('DEL', lk)
    redis.call('SREM', p .. ':leases', stream)
    released = released + 1
  end
end
return released
