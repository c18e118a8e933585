/*! picket strike widget: a banner before the strike, a full-page takeover on strike days.
 * Plain JavaScript, no framework, no build step. It makes no request at all: the campaign
 * data is inlined below by the picket host that serves it (GET /widget.js) or by
 * `picket widget export`. Options are data- attributes of its own script tag; see the
 * README section "Embedding the strike widget".
 *
 * For tests (browser tests rely on these): #picket-banner, #picket-countdown,
 * #picket-takeover (#picket-takeover-title), .picket-sign, .picket-join, .picket-close;
 * <html data-picket-widget="banner|takeover|none|closed"> once the widget has decided;
 * ?picket-strike=1|banner|0, ?picket-now=ISO-8601, ?picket-lang=xx on the host page. */
(function () {
  'use strict';

  // Replaced by the server with {"campaigns": [...]}; never edited by hand.
  var CONFIG = /*picket:config*/null;

  var STRINGS = {
    en: {
      before: 'We join the {title}: {days}.',
      local: '(midnight to midnight in your time zone)',
      startsIn: 'Starts in {time}',
      dhm: '{d} d {h} h {m} min',
      hm: '{h} h {m} min',
      signed: '{n} signed',
      acrossHosts: 'across {m} hosts',
      striking: '{n} striking',
      sign: 'Sign the declaration',
      join: 'Join the strike',
      close: 'Close',
      strikeTitle: 'This site is on strike today',
      strikeText: 'Today we join the {title} (#{hashtag}) and stay off social media.',
      strikeDays: 'Strike days: {days}',
      proceed: 'Continue to the site'
    },
    de: {
      before: 'Wir machen mit beim {title}: {days}.',
      local: '(jeweils von Mitternacht bis Mitternacht in Ihrer Zeitzone)',
      startsIn: 'Beginn in {time}',
      dhm: '{d} T. {h} Std. {m} Min.',
      hm: '{h} Std. {m} Min.',
      signed: '{n} haben unterschrieben',
      acrossHosts: 'auf {m} Seiten',
      striking: '{n} streiken',
      sign: 'Erklärung unterschreiben',
      join: 'Mitstreiken',
      close: 'Schließen',
      strikeTitle: 'Diese Seite streikt heute',
      strikeText: 'Heute machen wir mit beim {title} (#{hashtag}) und bleiben den sozialen Medien fern.',
      strikeDays: 'Streiktage: {days}',
      proceed: 'Weiter zur Seite'
    },
    fr: {
      before: 'Nous rejoignons {title} : {days}.',
      local: '(de minuit à minuit dans votre fuseau horaire)',
      startsIn: 'Début dans {time}',
      dhm: '{d} j {h} h {m} min',
      hm: '{h} h {m} min',
      signed: '{n} signatures',
      acrossHosts: 'sur {m} sites',
      striking: '{n} en grève',
      sign: 'Signer la déclaration',
      join: 'Rejoindre la grève',
      close: 'Fermer',
      strikeTitle: 'Ce site est en grève aujourd’hui',
      strikeText: 'Aujourd’hui, nous rejoignons {title} (#{hashtag}) et restons loin des réseaux sociaux.',
      strikeDays: 'Jours de grève : {days}',
      proceed: 'Continuer vers le site'
    },
    es: {
      before: 'Nos sumamos a {title}: {days}.',
      local: '(de medianoche a medianoche en tu zona horaria)',
      startsIn: 'Empieza en {time}',
      dhm: '{d} d {h} h {m} min',
      hm: '{h} h {m} min',
      signed: '{n} firmas',
      acrossHosts: 'en {m} sitios',
      striking: '{n} en huelga',
      sign: 'Firmar la declaración',
      join: 'Unirse a la huelga',
      close: 'Cerrar',
      strikeTitle: 'Este sitio está en huelga hoy',
      strikeText: 'Hoy nos sumamos a {title} (#{hashtag}) y nos mantenemos fuera de las redes sociales.',
      strikeDays: 'Días de huelga: {days}',
      proceed: 'Continuar al sitio'
    }
  };

  // Every selector starts with one of the widget's ids: the host page's rules of lower
  // specificity lose against them, and nothing here reaches the host page's own elements.
  var CSS =
    '#picket-banner,#picket-banner *,#picket-takeover,#picket-takeover *{all:revert;box-sizing:border-box}' +
    '#picket-banner{position:fixed;left:0;right:0;bottom:0;z-index:2147483646;display:flex;flex-wrap:wrap;' +
    'align-items:center;gap:.5em 1em;margin:0;padding:.75em 3.5em .75em 1em;background:#b3261e;color:#fff;' +
    'font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;text-align:left;box-shadow:0 0 10px rgba(0,0,0,.35)}' +
    '#picket-banner.picket-top{top:0;bottom:auto}' +
    '#picket-banner p{margin:0;flex:1 1 20em}' +
    '#picket-banner .picket-links{flex:0 1 auto;display:flex;flex-wrap:wrap;gap:.5em}' +
    '#picket-banner .picket-countdown,#picket-banner .picket-counters{white-space:nowrap}' +
    '#picket-banner a,#picket-takeover a{display:inline-block;padding:.4em .8em;border-radius:4px;background:#fff;' +
    'color:#b3261e;font-weight:600;text-decoration:none}' +
    '#picket-banner a:hover,#picket-takeover a:hover,#picket-banner a:focus,#picket-takeover a:focus{text-decoration:underline}' +
    '#picket-banner .picket-close{position:absolute;top:50%;right:.5em;transform:translateY(-50%);width:2em;height:2em;' +
    'padding:0;border:0;border-radius:50%;background:transparent;color:#fff;font:22px/1 sans-serif;cursor:pointer}' +
    '#picket-takeover{position:fixed;top:0;left:0;right:0;bottom:0;z-index:2147483647;display:flex;align-items:center;' +
    'justify-content:center;overflow:auto;margin:0;padding:1em;background:#161616;color:#fff;outline:none;' +
    'font:17px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;text-align:left}' +
    '#picket-takeover .picket-panel{max-width:38em;margin:auto}' +
    '#picket-takeover .picket-tag{margin:0;color:#ff8a80;font-weight:700;letter-spacing:.03em}' +
    '#picket-takeover h2{margin:.2em 0 .5em;font-size:2.2em;line-height:1.15;color:#fff}' +
    '#picket-takeover p{margin:.6em 0}' +
    '#picket-takeover .picket-links{display:flex;flex-wrap:wrap;gap:.75em;margin-top:1.5em}' +
    '#picket-takeover .picket-close{margin-top:2em;padding:.5em 1em;border:1px solid #aaa;border-radius:4px;' +
    'background:transparent;color:#ddd;font:inherit;cursor:pointer}';

  var script = document.currentScript ||
    document.querySelector('script[src*="widget.js"][data-campaign]') ||
    document.querySelector('script[src*="widget.js"]');

  function opt(name) {
    return script ? script.getAttribute('data-' + name) : null;
  }

  function param(name) {
    try {
      return new URLSearchParams(window.location.search).get(name);
    } catch (e) {
      return null;
    }
  }

  function fill(text, vars) {
    return text.replace(/\{(\w+)\}/g, function (all, key) {
      return Object.prototype.hasOwnProperty.call(vars, key) ? String(vars[key]) : all;
    });
  }

  function pickLang(wanted) {
    var list = [wanted].concat(navigator.languages || [], navigator.language || []);
    for (var i = 0; i < list.length; i++) {
      var code = String(list[i] || '').toLowerCase().split(/[-_]/)[0];
      if (STRINGS[code]) return code;
    }
    return 'en';
  }

  function pad(n) {
    return (n < 10 ? '0' : '') + n;
  }

  // The visitor's own calendar date, the unit of "once a day".
  function localDate(t) {
    return t.getFullYear() + '-' + pad(t.getMonth() + 1) + '-' + pad(t.getDate());
  }

  function parseDay(day) {
    var p = day.split('-');
    return [+p[0], +p[1] - 1, +p[2]];
  }

  // Strike days are read in the visitor's own zone (local midnight to local midnight; where
  // midnight does not exist, Date moves on to the first instant after the gap, as the server
  // does) or are absolute UTC windows.
  function periods(c) {
    if (c.mode === 'local') {
      return (c.days || []).map(function (day) {
        var d = parseDay(day);
        return { start: new Date(d[0], d[1], d[2]), end: new Date(d[0], d[1], d[2] + 1) };
      });
    }
    return (c.windows || []).map(function (w) {
      return { start: new Date(w.start), end: new Date(w.end) };
    });
  }

  function cookieName(kind, c) {
    return 'picket_' + kind + '_' + String(c.id).replace(/[^A-Za-z0-9_-]/g, '_');
  }

  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === name) return parts[i].slice(eq + 1);
    }
    return null;
  }

  function writeCookie(name, value) {
    document.cookie = name + '=' + value + '; path=/; max-age=86400; SameSite=Lax' +
      (window.location.protocol === 'https:' ? '; Secure' : '');
  }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    for (var k in attrs) {
      if (k === 'text') e.textContent = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (child) {
      if (child) e.appendChild(child);
    });
    return e;
  }

  function start() {
    if (!CONFIG || !CONFIG.campaigns || !CONFIG.campaigns.length) return;
    var wanted = opt('campaign');
    var c = CONFIG.campaigns[0];
    if (wanted) {
      c = null;
      CONFIG.campaigns.forEach(function (x) {
        if (x.id === wanted) c = x;
      });
    }
    if (!c) {
      if (window.console) console.warn('picket widget: no campaign "' + wanted + '" in this script');
      return;
    }

    var lang = pickLang(param('picket-lang') || opt('lang'));
    var t = STRINGS[lang];
    var closable = !/^(false|0|no|off)$/i.test(opt('close') || '');
    var top = opt('position') === 'top';

    // `?picket-now=` (or data-now) moves the widget's clock for testing; it then runs on
    // from that instant.
    var shift = 0;
    var nowText = param('picket-now') || opt('now');
    if (nowText && !isNaN(new Date(nowText).getTime())) shift = new Date(nowText).getTime() - Date.now();
    function now() {
      return new Date(Date.now() + shift);
    }

    var list = periods(c);
    var at = now();
    var view = 'none';
    var next = null;
    for (var i = 0; i < list.length; i++) {
      if (at >= list[i].start && at < list[i].end) view = 'takeover';
      if (!next && list[i].start > at) next = list[i].start;
    }
    if (view === 'none' && next) view = 'banner';
    var today = localDate(at);
    if (view === 'takeover' && readCookie(cookieName('closed', c)) === today) view = 'none';
    if (view === 'banner' && readCookie(cookieName('banner', c)) === today) view = 'none';

    var forced = (param('picket-strike') || '').toLowerCase();
    if (/^(1|true|on|takeover|strike)$/.test(forced)) view = 'takeover';
    else if (forced === 'banner') view = 'banner';
    else if (/^(0|false|off|none)$/.test(forced)) view = 'none';

    document.documentElement.setAttribute('data-picket-widget', view);
    if (view === 'none') return;

    if (!document.getElementById('picket-style')) {
      (document.head || document.documentElement).appendChild(el('style', { id: 'picket-style', text: CSS }));
    }

    var numbers = typeof Intl !== 'undefined' ? new Intl.NumberFormat(lang) : null;
    function num(n) {
      return numbers ? numbers.format(n) : String(n);
    }

    function daysText() {
      var fmt;
      var parts = list.map(function (p) {
        if (c.mode === 'local') {
          fmt = fmt || new Intl.DateTimeFormat(lang, { day: 'numeric', month: 'long', year: 'numeric' });
          return fmt.format(p.start);
        }
        fmt = fmt || new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' });
        return fmt.formatRange ? fmt.formatRange(p.start, p.end) : fmt.format(p.start) + ' – ' + fmt.format(p.end);
      });
      var text = Intl.ListFormat ? new Intl.ListFormat(lang, { type: 'conjunction' }).format(parts) : parts.join(', ');
      return c.mode === 'local' ? text + ' ' + t.local : text;
    }

    function counters() {
      if (!c.counters) return null;
      return el('span', {
        'class': 'picket-counters',
        text: fill(t.signed, { n: num(c.counters.signatures) }) +
          (c.counters.hosts > 1 ? ' ' + fill(t.acrossHosts, { m: num(c.counters.hosts) }) : '') +
          ' · ' + fill(t.striking, { n: num(c.counters.strikers) })
      });
    }

    function links() {
      return el('p', { 'class': 'picket-links' }, [
        el('a', { 'class': 'picket-sign', href: c.sign_url, text: t.sign }),
        el('a', { 'class': 'picket-join', href: c.join_url, text: t.join })
      ]);
    }

    var vars = { title: c.title, hashtag: c.hashtag };
    if (view === 'banner') {
      var countdown = el('span', { 'class': 'picket-countdown', id: 'picket-countdown' });
      var banner = el('div', {
        id: 'picket-banner',
        'class': top ? 'picket-top' : 'picket-bottom',
        role: 'region',
        'aria-label': '#' + c.hashtag,
        lang: lang
      }, [
        el('p', { 'class': 'picket-text' }, [
          el('strong', { 'class': 'picket-title', text: '#' + c.hashtag }),
          document.createTextNode(' ' + fill(t.before, { title: c.title, days: daysText() }) + ' '),
          countdown,
          document.createTextNode(' '),
          counters()
        ]),
        links(),
        el('button', { type: 'button', 'class': 'picket-close', 'aria-label': t.close, title: t.close, text: '×' })
      ]);
      var timer = null;
      var tick = function () {
        var target = null;
        var at = now();
        list.forEach(function (p) {
          if (!target && p.start > at) target = p.start;
        });
        if (!target) {
          countdown.textContent = '';
          return;
        }
        // Whole minutes, rounded up: "0 min" only once it has started.
        var m = Math.ceil((target - at) / 60000);
        var d = Math.floor(m / 1440);
        var time = fill(d ? t.dhm : t.hm, { d: d, h: Math.floor(m % 1440 / 60), m: m % 60 });
        countdown.textContent = fill(t.startsIn, { time: time });
      };
      tick();
      timer = setInterval(tick, 15000);
      banner.querySelector('.picket-close').addEventListener('click', function () {
        clearInterval(timer);
        writeCookie(cookieName('banner', c), localDate(now()));
        banner.parentNode.removeChild(banner);
        document.documentElement.setAttribute('data-picket-widget', 'closed');
      });
      document.body.appendChild(banner);
      return;
    }

    var previous = document.activeElement;
    var overflow = document.documentElement.style.overflow;
    var dialog = el('div', {
      id: 'picket-takeover',
      role: 'dialog',
      'aria-modal': 'true',
      'aria-labelledby': 'picket-takeover-title',
      'aria-describedby': 'picket-takeover-text',
      tabindex: '-1',
      lang: lang
    }, [
      el('div', { 'class': 'picket-panel' }, [
        el('p', { 'class': 'picket-tag', text: '#' + c.hashtag }),
        el('h2', { id: 'picket-takeover-title', text: t.strikeTitle }),
        el('p', { id: 'picket-takeover-text', text: fill(t.strikeText, vars) }),
        c.description ? el('p', { 'class': 'picket-description', text: c.description }) : null,
        el('p', { 'class': 'picket-days', text: fill(t.strikeDays, { days: daysText() }) }),
        c.counters ? el('p', {}, [counters()]) : null,
        links(),
        closable ? el('button', { type: 'button', 'class': 'picket-close', text: t.proceed }) : null
      ])
    ]);

    function close() {
      writeCookie(cookieName('closed', c), localDate(now()));
      dialog.parentNode.removeChild(dialog);
      document.documentElement.style.overflow = overflow;
      document.documentElement.setAttribute('data-picket-widget', 'closed');
      if (previous && previous.focus) previous.focus();
    }

    dialog.addEventListener('keydown', function (e) {
      if ((e.key === 'Escape' || e.key === 'Esc') && closable) {
        e.preventDefault();
        close();
      } else if (e.key === 'Tab') {
        // Keep focus inside the dialog: the page behind it is not there for now.
        var items = dialog.querySelectorAll('a[href],button');
        var first = items[0];
        var last = items[items.length - 1];
        if (e.shiftKey && (document.activeElement === first || document.activeElement === dialog)) {
          e.preventDefault();
          last.focus();
        } else if (!e.shiftKey && document.activeElement === last) {
          e.preventDefault();
          first.focus();
        }
      }
    });
    if (closable) dialog.querySelector('.picket-close').addEventListener('click', close);
    document.documentElement.style.overflow = 'hidden';
    document.body.appendChild(dialog);
    dialog.focus();
  }

  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start);
})();
