  // ---------------------------------------------------------------------------------------------
  // The conversation across page loads (a link followed, the reload after signing in): kept in
  // sessionStorage, so it belongs to this tab of this site and goes when the tab closes. Kept: the
  // visitor's questions, the answers (with their sources and the visitor's vote), action results, and
  // the conversation id. Never the identity token: it lives in identity.js's closure only.
  // Action results are the visitor's own account data (orders, tickets): once one is kept, the
  // transcript is "private", and its results are dropped as soon as nobody is signed in (the visitor
  // signed out, or the next page load finds no session), so the next person at this browser does not
  // see them; questions and answers stay.

  var TRANSCRIPT_KEY = "botctl:" + WORKSPACE + ":conversation";
  var TRANSCRIPT_MAX = 80; // entries; the oldest go first
  var TRANSCRIPT_KINDS = { me: 1, answer: 1, result: 1, note: 1 };
  var transcript = { conversation: null, entries: [], private: false };

  function sessionStore() {
    try { return window.sessionStorage; } catch (e) { return null; } // blocked (privacy settings)
  }

  function validEntry(e) {
    return e && typeof e === "object" && TRANSCRIPT_KINDS[e.kind] === 1 &&
      (e.kind === "result" ? typeof e.action === "string" : typeof e.text === "string");
  }

  function loadTranscript() {
    var store = sessionStore();
    var raw = null;
    try { raw = store && store.getItem(TRANSCRIPT_KEY); } catch (e) { raw = null; }
    if (!raw) { return transcript; }
    try {
      var data = JSON.parse(raw);
      if (data && data.v === 1 && Array.isArray(data.entries)) {
        transcript.entries = data.entries.filter(validEntry).slice(-TRANSCRIPT_MAX);
        transcript.conversation = typeof data.conversation === "string" ? data.conversation.slice(0, 64) : null;
        transcript.private = data.private === true;
      }
    } catch (e) { /* not ours or damaged: start afresh */ }
    return transcript;
  }

  function saveTranscript() {
    var store = sessionStore();
    if (!store) { return; }
    transcript.entries = transcript.entries.slice(-TRANSCRIPT_MAX);
    var data = { v: 1, conversation: transcript.conversation, private: transcript.private, entries: transcript.entries };
    try { store.setItem(TRANSCRIPT_KEY, JSON.stringify(data)); } catch (e) { /* full or blocked: kept in memory only */ }
  }

  function keep(entry) {
    transcript.entries.push(entry);
    if (entry.kind === "result") { transcript.private = true; }
    saveTranscript();
    return entry;
  }

  function dropResults() {
    transcript.entries = transcript.entries.filter(function (e) { return e.kind !== "result"; });
    transcript.private = false;
    saveTranscript();
  }
