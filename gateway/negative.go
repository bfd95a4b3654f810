package gateway

import "sync"

// negCache remembers answers with no instances (a covered service the
// mirror says has none, a name the public cluster does not know) for a
// short TTL, without any watch: a burst of requests for such a name costs
// one lookup, and a flood of made-up names costs bounded memory.
type negCache struct {
	mu  sync.Mutex
	m   map[string]negEntry
	max int
}

type negEntry struct {
	a     *Answer
	until int64 // Unix nanoseconds
}

func newNegCache(maxEntries int) *negCache {
	return &negCache{m: map[string]negEntry{}, max: maxEntries}
}

// get returns the remembered answer for name, if it has not expired.
func (c *negCache) get(name string, now int64) *Answer {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[name]
	if !ok {
		return nil
	}
	if now >= n.until {
		delete(c.m, name)
		return nil
	}
	return n.a
}

// put remembers a until the given time. When full it drops expired
// entries, then (a flood of distinct names) an eighth of the rest, chosen
// by map order, which is random: a TTL cache may forget early.
func (c *negCache) put(name string, a *Answer, until, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[name]; !ok && len(c.m) >= c.max {
		c.sweepLocked(now)
		for k := range c.m {
			if len(c.m) <= c.max-max(1, c.max/8) {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[name] = negEntry{a: a, until: until}
}

// drop forgets names (they changed in the mirror).
func (c *negCache) drop(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		delete(c.m, n)
	}
}

// clear forgets everything (the mirror changed in ways the feed cannot
// list).
func (c *negCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

// sweep drops expired entries and returns how many are left.
func (c *negCache) sweep(now int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(now)
	return len(c.m)
}

func (c *negCache) sweepLocked(now int64) {
	for k, n := range c.m {
		if now >= n.until {
			delete(c.m, k)
		}
	}
}

func (c *negCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
