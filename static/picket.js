// picket's pages: progressive enhancement only, every page works without it. Served from
// /static/ under a name that changes with its content, so pages need no inline script and
// the Content-Security-Policy can allow scripts from picket alone.
(function () {
  'use strict';

  // The campaign page: aim the countdown at the visitor's own local midnight when the
  // strike follows each participant's time zone.
  function countdown() {
    var el = document.getElementById('countdown');
    if (!el) return;
    var day = el.getAttribute('data-local-day');
    var target = day ? new Date(day + 'T00:00:00') : new Date(el.getAttribute('data-start'));
    function tick() {
      var s = Math.floor((target - new Date()) / 1000);
      if (s <= 0) { el.textContent = 'now'; return; }
      var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
      el.textContent = 'in ' + (d ? d + ' d ' : '') + h + ' h ' + m + ' min';
    }
    tick(); setInterval(tick, 30000);
  }

  // The join form: suggest the browser's own zone when none is filled in.
  function timeZone() {
    var tz = document.getElementById('tz');
    if (tz && !tz.value && window.Intl) {
      try { tz.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch (e) {}
    }
  }

  // Links to copy (invitation, magic link): selected whole on focus.
  function copyFields() {
    var fields = document.querySelectorAll('input.copy');
    for (var i = 0; i < fields.length; i++) {
      fields[i].addEventListener('focus', function () { this.select(); });
    }
  }

  // The participant's page: "Remind me in this browser" (Web Push). Shown only where the
  // browser has a service worker, push and notifications; the subscription goes to
  // /me/push as a form with the page's CSRF token, like every other form.
  function webPush() {
    var box = document.getElementById('push');
    if (!box || !('serviceWorker' in navigator) || !('PushManager' in window) ||
        !('Notification' in window)) return;
    var on = document.getElementById('push-on'), off = document.getElementById('push-off');
    var status = document.getElementById('push-status');
    var csrf = document.getElementById('push-csrf').value;
    document.getElementById('push-unsupported').hidden = true;
    function key() {
      var b = box.getAttribute('data-key').replace(/-/g, '+').replace(/_/g, '/');
      var raw = atob(b + '='.repeat((4 - b.length % 4) % 4)), out = new Uint8Array(raw.length);
      for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
      return out;
    }
    function send(path, fields) {
      var body = new URLSearchParams(fields);
      body.set('csrf', csrf);
      return fetch(path, { method: 'POST', body: body, credentials: 'same-origin' })
        .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); });
    }
    function show(subscribed) { on.hidden = subscribed; off.hidden = !subscribed; }
    navigator.serviceWorker.register('/sw.js').then(function (reg) {
      return reg.pushManager.getSubscription().then(function (sub) {
        show(!!sub);
        on.addEventListener('click', function () {
          status.textContent = '';
          Notification.requestPermission().then(function (p) {
            if (p !== 'granted') throw new Error('notifications are not allowed');
            return reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key() });
          }).then(function (s) {
            var j = s.toJSON();
            return send('/me/push', { endpoint: j.endpoint, p256dh: j.keys.p256dh, auth: j.keys.auth });
          }).then(function () {
            show(true); status.textContent = 'This browser will remind you.';
          }, function (e) {
            status.textContent = 'Reminders could not be turned on here (' + e.message + ').';
          });
        });
        off.addEventListener('click', function () {
          reg.pushManager.getSubscription().then(function (s) {
            if (!s) return null;
            var endpoint = s.endpoint;
            return s.unsubscribe().then(function () { return send('/me/push/delete', { endpoint: endpoint }); });
          }).then(function () {
            show(false); status.textContent = 'This browser will not remind you any more.';
          }, function (e) { status.textContent = 'Could not stop reminders here (' + e.message + ').'; });
        });
      });
    }, function () {});
  }

  // Notices to post by hand: a button copies the text; without script the text is
  // there to select.
  function copyButtons() {
    if (!navigator.clipboard) return;
    var buttons = document.querySelectorAll('button.copy-button');
    for (var i = 0; i < buttons.length; i++) {
      var b = buttons[i];
      b.hidden = false;
      b.addEventListener('click', function () {
        var button = this, source = document.getElementById(button.getAttribute('data-copy'));
        if (!source) return;
        navigator.clipboard.writeText(source.textContent).then(function () {
          button.textContent = 'Copied';
        }, function () {});
      });
    }
  }

  function start() { countdown(); timeZone(); copyFields(); copyButtons(); webPush(); }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
