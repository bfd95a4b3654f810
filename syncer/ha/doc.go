// Package ha lets several gwsync controller replicas share the gateways,
// each gateway written by exactly one replica at a time, fenced by Consul.
//
// For every gateway the lock lives in the gateway's own dedicated cluster
// (mirror.LockKey), held by a session this replica keeps in that cluster.
// The lock is the only authority: whoever Consul says holds it is the
// gateway's writer, and every write the controller sends starts with the
// lease's check-session op (Lease.CheckOp), so a replica that lost the lock
// (its session expired while it was paused or partitioned, or it handed the
// gateway over) cannot write anything, even in the middle of a cycle: Consul
// rejects the whole transaction (IsFenceError).
//
// Which replica tries to take which gateway is decided by a deterministic
// assignment (Assign) over the live replicas, seen through membership keys
// (mirror.ReplicaKey) that every replica holds with its session in each
// cluster it reaches. A gateway whose lock stays free is taken by any
// replica that reaches its cluster shortly after (availability before
// balance); a holder hands a gateway to its preferred owner only once that
// owner has been live for a settle time. Replicas that run a different
// configuration (Holder.ConfigHash) are reported, never fought over.
//
// The Coordinator exposes ownership as Leases whose context ends the moment
// ownership is lost, and the cluster-wide view (Owners, Members, Role) for
// the admin API and the status command.
package ha
