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

  function start() { countdown(); timeZone(); copyFields(); copyButtons(); }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
