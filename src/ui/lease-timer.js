// The timer that says when to renew a call's lease, in a dedicated worker: browsers throttle
// the timers of a hidden tab's page (Chromium: to once a minute after five minutes hidden),
// too seldom for a lease of a minute, and a worker's timers are not throttled that way.
// The page sends {beat, after}; after that many milliseconds this answers beat, the page's
// count, by which it tells the answer to the timer it set last from one it replaced. Each
// message replaces the timer before it; the page renews the lease itself, and times with
// this the wait before asking again after a renewal's 429 (Retry-After) as well.
'use strict';

let timer = null;
self.addEventListener('message', (event) => {
  clearTimeout(timer);
  const { beat, after } = event.data || {};
  if (typeof after === 'number') timer = setTimeout(() => self.postMessage(beat), after);
});
