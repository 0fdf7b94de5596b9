/*
 * trackline DNI snippet (served at /v1/script.js). See docs/api.md.
 *
 *   <script src="https://trackline.example/v1/script.js" data-site-key="KEY" async></script>
 *
 * Asks the trackline API for this visitor's tracked number and swaps the site's
 * displayed numbers (text and tel: links, in the format the page used) for it,
 * including nodes added later. Touches the session while the page is visible.
 * Sets only first-party cookies: tl_sid (session id) and tl_ch (campaign
 * parameters of the last non-direct visit). No fingerprinting, no storage APIs.
 * Any failure leaves the page as it was: nothing is thrown into the page.
 *
 * Ad consent (docs/googleads.md): the script reads the page's Google Consent Mode v2
 * state (gtag('consent', 'default'|'update', {...}) commands in window.dataLayer, also
 * those pushed later) or an explicit call, which wins over Consent Mode once made:
 *
 *   window.trackline = window.trackline || function () { (trackline.q = trackline.q || []).push(arguments); };
 *   trackline('consent', { ad_user_data: 'granted', ad_personalization: 'granted' });
 *
 * ad_user_data and ad_personalization each fall back to ad_storage. Both granted is
 * "granted", either denied is "denied", anything else "unknown" (not sent). The answer
 * goes with the session as ad_consent, and again whenever it changes.
 */
(function () {
  'use strict';

  var CAMPAIGN_KEYS = ['utm_source', 'utm_medium', 'utm_campaign', 'utm_term',
    'utm_content', 'gclid', 'gbraid', 'wbraid'];
  var SID_COOKIE = 'tl_sid';
  var CH_COOKIE = 'tl_ch';
  var CH_MAX_AGE = 30 * 24 * 3600;
  var MAX_URL = 2048;
  var MAX_PARAM = 256;
  var TIMEOUT_MS = 10000;
  // Text inside these is never rewritten.
  var SKIP = 'script,style,textarea,input,select,noscript,template,' +
    '[contenteditable]:not([contenteditable="false"])';
  // Two-digit ITU country codes; 1 and 7 are one digit, all others three.
  var CC2 = ' 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 ' +
    '60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98 ';
  // Characters a page may put between the digits of a number.
  var SEP = '[\\s.\\-\\/()]';

  var state = {
    key: '', base: '', sid: '', number: null, formatted: '', replace: [],
    old: {}, plan: null, interval: 60000, lastTouch: 0, timer: 0,
    busy: false, observer: null, started: false,
    consent: '', sentConsent: '', explicit: null, gtag: {}
  };

  function safe(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) { return undefined; }
    };
  }

  // --- numbers -------------------------------------------------------------

  // splitE164 splits "+31852087972" into country code "31" and national
  // significant number "852087972"; null when n is not E.164.
  function splitE164(n) {
    if (typeof n !== 'string' || !/^\+[1-9]\d{5,14}$/.test(n)) return null;
    var d = n.slice(1);
    var l = (d[0] === '1' || d[0] === '7') ? 1 : (CC2.indexOf(' ' + d.slice(0, 2) + ' ') >= 0 ? 2 : 3);
    return { e164: n, cc: d.slice(0, l), nsn: d.slice(l) };
  }

  // The written forms of a number, by the digits they contain:
  // p "+31 85..", p0 "+31 (0)85..", i "0031 85..", i0 "0031 (0)85..", n "085..".
  var FORMS = ['p', 'p0', 'i', 'i0', 'n'];

  function digitsFor(num, form) {
    switch (form) {
      case 'p': return num.cc + num.nsn;
      case 'p0': return num.cc + '0' + num.nsn;
      case 'i': return '00' + num.cc + num.nsn;
      case 'i0': return '00' + num.cc + '0' + num.nsn;
      default: return '0' + num.nsn;
    }
  }

  // keyOf names a match by its leading "+" (if any) and its digits.
  function keyOf(text, digits) {
    return (text.charAt(0) === '+' ? '+' : '') + digits;
  }

  function digitsPattern(s) {
    return s.split('').join(SEP + '{0,3}');
  }

  function numberPattern(num) {
    var nsn = digitsPattern(num.nsn);
    return '(?:\\+|00)' + digitsPattern(num.cc) + SEP + '{0,3}(?:\\(0\\)' + SEP + '{0,3})?' + nsn +
      '|\\(?0' + SEP + '{0,3}' + nsn;
  }

  // makePlan prepares the search for every number in from (E.164 strings) and
  // their replacement by the number to.
  function makePlan(from, to, formatted) {
    var target = splitE164(to);
    if (!target) return null;
    var forms = {};
    var parts = [];
    for (var i = 0; i < from.length; i++) {
      var num = splitE164(from[i]);
      if (!num || num.e164 === to) continue;
      for (var j = 0; j < FORMS.length; j++) {
        var f = FORMS[j];
        var d = digitsFor(num, f);
        var k = (f === 'p' || f === 'p0') ? '+' + d : d;
        if (!forms[k]) forms[k] = f;
      }
      parts.push(numberPattern(num));
    }
    if (!parts.length) return null;
    return {
      re: new RegExp(parts.join('|'), 'g'),
      forms: forms,
      to: target,
      formatted: formatted || to
    };
  }

  function glued(s, i) {
    return i >= 0 && i < s.length && /[0-9A-Za-z\u00C0-\u024F]/.test(s.charAt(i));
  }

  // rewrite returns s with every number of plan replaced, or null when
  // nothing changed. fallback is used when the page's form of the number has
  // a different digit count than the new number's.
  function rewrite(s, plan, fallback) {
    var re = plan.re;
    var out = '';
    var last = 0;
    var m;
    re.lastIndex = 0;
    while ((m = re.exec(s)) !== null) {
      var text = m[0];
      var start = m.index;
      var end = start + text.length;
      var before = s.charAt(start - 1);
      if (glued(s, start - 1) || before === '+' || glued(s, end)) {
        re.lastIndex = start + 1;
        continue;
      }
      var digits = text.replace(/\D/g, '');
      var form = plan.forms[keyOf(text, digits)];
      if (!form) {
        re.lastIndex = start + 1;
        continue;
      }
      var nd = digitsFor(plan.to, form);
      var rep;
      if (nd.length === digits.length) {
        var n = 0;
        rep = text.replace(/\d/g, function () { return nd.charAt(n++); });
      } else {
        rep = fallback;
      }
      out += s.slice(last, start) + rep;
      last = end;
    }
    if (last === 0) return null;
    out += s.slice(last);
    return out === s ? null : out;
  }

  // --- the page ------------------------------------------------------------

  function skipped(node) {
    var el = node.nodeType === 1 ? node : node.parentElement;
    return !el || (el.closest && el.closest(SKIP) !== null);
  }

  function fixText(node, plan) {
    var s = node.data;
    if (!s || !/\d/.test(s) || skipped(node)) return;
    var r = rewrite(s, plan, plan.formatted);
    if (r !== null) node.data = r;
  }

  function fixLink(el, plan) {
    var href = el.getAttribute('href');
    if (!href || !/^\s*tel:/i.test(href)) return;
    var i = href.indexOf(':') + 1;
    var rest = href.slice(i);
    var decoded = rest;
    try { decoded = decodeURIComponent(rest); } catch (e) { decoded = rest; }
    var r = rewrite(decoded, plan, plan.to.e164);
    if (r !== null) el.setAttribute('href', href.slice(0, i) + r);
  }

  function scan(root, plan) {
    if (!root || !plan) return;
    if (root.nodeType === 3) {
      fixText(root, plan);
      return;
    }
    if (root.nodeType !== 1 && root.nodeType !== 9 && root.nodeType !== 11) return;
    if (root.nodeType === 1) {
      if (skipped(root)) return;
      if (root.tagName === 'A') fixLink(root, plan);
    }
    if (root.querySelectorAll) {
      var links = root.querySelectorAll('a[href]');
      for (var i = 0; i < links.length; i++) fixLink(links[i], plan);
    }
    var walker = document.createTreeWalker(root, 5 /* SHOW_ELEMENT | SHOW_TEXT */, {
      acceptNode: function (n) {
        if (n.nodeType === 3) return 1; // FILTER_ACCEPT
        return n.matches && n.matches(SKIP) ? 2 : 3; // FILTER_REJECT : FILTER_SKIP
      }
    });
    var texts = [];
    var t;
    while ((t = walker.nextNode()) !== null) texts.push(t);
    for (var j = 0; j < texts.length; j++) fixText(texts[j], plan);
  }

  var onMutations = safe(function (records) {
    var plan = state.plan;
    if (plan) {
      for (var i = 0; i < records.length; i++) {
        var r = records[i];
        if (r.type === 'childList') {
          for (var j = 0; j < r.addedNodes.length; j++) scan(r.addedNodes[j], plan);
        } else if (r.type === 'characterData') {
          fixText(r.target, plan);
        } else if (r.type === 'attributes') {
          fixLink(r.target, plan);
        }
      }
    }
    // Drop the records of our own changes so they do not come back to us.
    if (state.observer) state.observer.takeRecords();
  });

  function observe() {
    if (state.observer || typeof MutationObserver !== 'function') return;
    state.observer = new MutationObserver(onMutations);
    state.observer.observe(document.documentElement, {
      childList: true, subtree: true, characterData: true,
      attributes: true, attributeFilter: ['href']
    });
  }

  var scanAll = safe(function () {
    scan(document.documentElement, state.plan);
    if (state.observer) state.observer.takeRecords();
  });

  // --- cookies -------------------------------------------------------------

  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split(';') : [];
    for (var i = 0; i < parts.length; i++) {
      var p = parts[i].replace(/^\s+/, '');
      if (p.indexOf(name + '=') === 0) {
        try { return decodeURIComponent(p.slice(name.length + 1)); } catch (e) { return ''; }
      }
    }
    return '';
  }

  function writeCookie(name, value, maxAge) {
    var c = name + '=' + encodeURIComponent(value) + '; Max-Age=' + maxAge + '; Path=/; SameSite=Lax';
    if (location.protocol === 'https:') c += '; Secure';
    document.cookie = c;
  }

  // --- campaign ------------------------------------------------------------

  function campaignFromURL() {
    var q = new URLSearchParams(location.search);
    var c = {};
    var any = false;
    for (var i = 0; i < CAMPAIGN_KEYS.length; i++) {
      var v = q.get(CAMPAIGN_KEYS[i]);
      if (v) {
        c[CAMPAIGN_KEYS[i]] = v.slice(0, MAX_PARAM);
        any = true;
      }
    }
    return any ? c : null;
  }

  function campaignFromCookie() {
    var raw = readCookie(CH_COOKIE);
    if (!raw) return null;
    var v;
    try { v = JSON.parse(raw); } catch (e) { return null; }
    if (!v || typeof v !== 'object') return null;
    var c = {};
    var any = false;
    for (var i = 0; i < CAMPAIGN_KEYS.length; i++) {
      var x = v[CAMPAIGN_KEYS[i]];
      if (typeof x === 'string' && x) {
        c[CAMPAIGN_KEYS[i]] = x.slice(0, MAX_PARAM);
        any = true;
      }
    }
    return any ? c : null;
  }

  // A visit is direct when it has no foreign referrer; only a direct visit
  // inherits the campaign of the last non-direct one (tl_ch).
  function directVisit() {
    if (!document.referrer) return true;
    try { return new URL(document.referrer).host === location.host; } catch (e) { return true; }
  }

  function clipURL(u) {
    if (!/^https?:\/\//i.test(u)) return '';
    if (u.length <= MAX_URL) return u;
    try {
      var p = new URL(u);
      return (p.origin + p.pathname).slice(0, MAX_URL);
    } catch (e) {
      return '';
    }
  }

  // --- consent -------------------------------------------------------------

  var CONSENT_KEYS = ['ad_storage', 'ad_user_data', 'ad_personalization'];

  // merge copies the consent keys of v ('granted' or 'denied') into into.
  function merge(into, v) {
    if (!v || typeof v !== 'object') return;
    for (var i = 0; i < CONSENT_KEYS.length; i++) {
      var x = v[CONSENT_KEYS[i]];
      if (x === 'granted' || x === 'denied') into[CONSENT_KEYS[i]] = x;
    }
  }

  // adConsent reduces a consent state to "granted", "denied" or "" (unknown).
  function adConsent(c) {
    var data = c.ad_user_data || c.ad_storage;
    var pers = c.ad_personalization || c.ad_storage;
    if (data === 'denied' || pers === 'denied') return 'denied';
    if (data === 'granted' && pers === 'granted') return 'granted';
    return '';
  }

  // gtagEntry merges a dataLayer entry if it is a gtag consent command.
  function gtagEntry(e) {
    if (e && typeof e === 'object' && typeof e.length === 'number' && e[0] === 'consent' &&
        (e[1] === 'default' || e[1] === 'update')) {
      merge(state.gtag, e[2]);
    }
  }

  var consentChanged = safe(function () {
    var c = state.explicit ? adConsent(state.explicit) : adConsent(state.gtag);
    if (c === state.consent) return;
    state.consent = c;
    // Tell the session (a known session id keeps its session; the consent is replaced).
    // While a request is out, the answer's apply does it.
    if (state.started && c && !state.busy) createSession(true);
  });

  // watchConsent reads the Consent Mode commands already in dataLayer, and those pushed
  // later, and takes over window.trackline for explicit calls (queued ones first).
  function watchConsent() {
    var dl = window.dataLayer;
    if (dl && typeof dl.push === 'function' && typeof dl.length === 'number') {
      for (var i = 0; i < dl.length; i++) gtagEntry(dl[i]);
      var push = dl.push;
      dl.push = function () {
        var r = push.apply(this, arguments);
        safe(function (args) {
          for (var j = 0; j < args.length; j++) gtagEntry(args[j]);
          consentChanged();
        })(arguments);
        return r;
      };
    }
    var queued = window.trackline && window.trackline.q;
    window.trackline = safe(function (cmd, v) {
      if (cmd !== 'consent' || !v || typeof v !== 'object') return;
      state.explicit = state.explicit || {};
      merge(state.explicit, v);
      consentChanged();
    });
    if (queued && typeof queued.length === 'number') {
      for (var k = 0; k < queued.length; k++) window.trackline.apply(null, queued[k]);
    }
    consentChanged();
  }

  // --- API -----------------------------------------------------------------

  // post never throws: a failure of any kind is a rejected promise.
  function post(path, body) {
    try {
      return send(path, body);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  function send(path, body) {
    var opts = {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: JSON.stringify(body),
      credentials: 'omit',
      mode: 'cors',
      cache: 'no-store'
    };
    var timer = 0;
    if (typeof AbortController === 'function') {
      var ac = new AbortController();
      opts.signal = ac.signal;
      timer = setTimeout(function () { ac.abort(); }, TIMEOUT_MS);
    }
    return fetch(state.base + path, opts).then(function (r) {
      clearTimeout(timer);
      if (!r.ok) {
        var err = new Error('trackline: HTTP ' + r.status);
        err.status = r.status;
        throw err;
      }
      return r.json();
    }, function (e) {
      clearTimeout(timer);
      throw e;
    });
  }

  function validAnswer(r) {
    if (!r || typeof r.session_id !== 'string' || !r.session_id || r.session_id.length > 256) return false;
    if (!splitE164(r.number)) return false;
    if (!Array.isArray(r.replace)) return false;
    return true;
  }

  var apply = safe(function (r) {
    if (!validAnswer(r)) return;
    state.sid = r.session_id;
    var until = Date.parse(r.expires_at);
    var maxAge = isNaN(until) ? 1800 : Math.floor((until - Date.now()) / 1000);
    writeCookie(SID_COOKIE, r.session_id, Math.max(60, maxAge));
    var iv = Number(r.touch_interval);
    if (iv > 0) state.interval = Math.min(Math.max(iv, 1), 86400) * 1000;
    state.lastTouch = Date.now();

    var replace = [];
    for (var i = 0; i < r.replace.length; i++) {
      if (splitE164(r.replace[i])) replace.push(r.replace[i]);
    }
    state.replace = replace;
    var changed = r.number !== state.number;
    if (state.number && changed) state.old[state.number] = true;
    state.number = r.number;
    state.formatted = typeof r.formatted_number === 'string' && r.formatted_number ? r.formatted_number : r.number;

    var from = replace.slice();
    for (var n in state.old) {
      if (Object.prototype.hasOwnProperty.call(state.old, n) && n !== r.number) from.push(n);
    }
    // No plan (nothing to replace) leaves the page alone but keeps the lease.
    state.plan = makePlan(from, state.number, state.formatted);
    if (!state.started) {
      state.started = true;
      observe();
      if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', scanAll);
      }
      scanAll();
      scheduleTouch();
    } else if (changed) {
      scanAll();
    }
    // The consent changed while a request was out.
    if (state.consent && state.consent !== state.sentConsent && !state.busy) createSession(true);
  });

  var createSession = safe(function (withSid) {
    var body = {
      site_key: state.key,
      landing_url: clipURL(location.href),
      referrer: clipURL(document.referrer || '')
    };
    if (withSid && state.sid) body.session_id = state.sid;
    if (state.consent) body.ad_consent = state.consent;
    state.sentConsent = state.consent;
    var fromURL = campaignFromURL();
    var campaign = fromURL || (directVisit() ? campaignFromCookie() : null);
    if (fromURL) writeCookie(CH_COOKIE, JSON.stringify(fromURL), CH_MAX_AGE);
    if (campaign) {
      for (var k in campaign) {
        if (Object.prototype.hasOwnProperty.call(campaign, k)) body[k] = campaign[k];
      }
    }
    state.busy = true;
    post('/v1/sessions', body).then(function (r) {
      state.busy = false;
      apply(r);
    }).catch(function () {
      state.busy = false;
    });
  });

  var touch = safe(function () {
    if (state.busy || !state.sid) return;
    state.busy = true;
    state.lastTouch = Date.now();
    post('/v1/sessions/' + encodeURIComponent(state.sid) + '/touch', { site_key: state.key })
      .then(function (r) {
        state.busy = false;
        apply(r);
      })
      .catch(function (e) {
        state.busy = false;
        // The session is gone (lease ran out while the tab slept): start anew.
        if (e && e.status === 404) {
          state.sid = '';
          createSession(false);
        }
      });
  });

  function visible() {
    return !document.visibilityState || document.visibilityState === 'visible';
  }

  var tick = safe(function () {
    scheduleTouch();
    if (visible() && Date.now() - state.lastTouch >= state.interval - 1000) touch();
  });

  function scheduleTouch() {
    clearTimeout(state.timer);
    state.timer = setTimeout(tick, state.interval);
  }

  var onVisibility = safe(function () {
    if (state.started && visible() && Date.now() - state.lastTouch >= state.interval) {
      touch();
      scheduleTouch();
    }
  });

  // --- start ---------------------------------------------------------------

  function ownScript() {
    var s = document.currentScript;
    if (s && s.src) return s;
    var all = document.getElementsByTagName('script');
    for (var i = all.length - 1; i >= 0; i--) {
      var src = all[i].src || '';
      if (/\/v1\/script\.js(?:[?#].*)?$/.test(src) && all[i].getAttribute('data-site-key')) return all[i];
    }
    return null;
  }

  safe(function () {
    if (window.__tracklineDNI) return;
    if (typeof fetch !== 'function' || typeof URLSearchParams !== 'function') return;
    var s = ownScript();
    if (!s) return;
    var key = s.getAttribute('data-site-key');
    if (!key) return;
    var base = s.src.replace(/\/v1\/script\.js(?:[?#].*)?$/, '');
    if (!/^https?:\/\//i.test(base)) return;
    window.__tracklineDNI = true;
    state.key = key;
    state.base = base;
    state.sid = readCookie(SID_COOKIE);
    document.addEventListener('visibilitychange', onVisibility);
    safe(watchConsent)();
    createSession(true);
  })();
})();
