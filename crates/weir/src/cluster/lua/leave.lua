-- A node leaving the cluster: its heartbeat is removed if it is still this process's.
-- ARGV: prefix, node id, incarnation. Returns 1 when removed.
local p, id, inc = ARGV[1], ARGV[2], ARGV[3]
local nk = p .. ':node:' .. id
if redis.call('HGET', nk, 'inc') == inc then
  redis.call('DEL', nk)
  redis.call('SREM', p .. ':nodes', id)
  return 1
end
return 0
