// picket's service worker: shows a strike reminder pushed by this host (Web Push) and opens
// the participant's page when it is clicked. It caches nothing and handles no fetch.
'use strict';

self.addEventListener('push', function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {}; }
  var title = data.title || 'Strike notice due';
  event.waitUntil(self.registration.showNotification(title, {
    body: data.body || '',
    tag: data.tag || 'picket-reminder',
    data: { url: data.url || '/me' }
  }));
});

self.addEventListener('notificationclick', function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || '/me';
  // Only this host's own pages are opened.
  var target = new URL(url, self.location.origin);
  if (target.origin !== self.location.origin) target = new URL('/me', self.location.origin);
  event.waitUntil(self.clients.openWindow(target.href));
});
