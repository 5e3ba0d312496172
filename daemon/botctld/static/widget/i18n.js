  // ---------------------------------------------------------------------------------------------
  // Words the visitor reads, per language. The language: the tag's data-locale, else the workspace's
  // (`botctl widget set --locale`), else the page's <html lang>, else English. A key missing in a
  // language falls back to English. Error messages: "err.<code>" (English ones are the generated
  // CODE_MESSAGES in api.js; a test holds every other language to the whole catalogue). Labels the
  // widget derives from action and field names (results.js) stay English.

  var STRINGS = {
    en: {
      "launcher": "Support chat", "launcher.with": "Chat with {name}", "title": "Support", "close": "Close chat",
      "who.connecting": "Connecting…", "who.signedIn": "Signed in as {name}", "who.you": "you",
      "who.anonymous": "Not signed in", "who.unavailable": "Unavailable", "log": "Conversation",
      "ask": "Ask a question", "ask.placeholder": "Ask a question…", "send": "Send", "tools": "Things I can do",
      "foot": "Answers come from this site's help pages.", "greeting": "Hi! How can we help?",
      "tray.signedIn": "For your account:", "tray.anonymous": "Some need you to sign in on this site first.",
      "signIn": "Sign in", "signIn.use": "Sign in to use this",
      "signIn.needed": "Sign in to use this: “{action}” needs to know who you are.",
      "signIn.then": "Please sign in on this site, then try again.", "cancel": "Cancel", "thinking": "Thinking…",
      "reference": "Reference: {id}", "sources": "Sources", "suggested": "Suggested actions",
      "unavailable": "Sorry, the chat isn't available on this page right now.",
      "err.rate": "Too many requests; try again in {n} s.", "err.details": "Some of the details aren't valid.",
      "err.generic": "Something went wrong; please try again.",
      "err.timeout": "The assistant took too long to answer; try again.",
      "err.network": "Can't reach the assistant right now; check your connection and try again.",
      "feedback": "Was this helpful?", "feedback.up": "Yes, helpful", "feedback.down": "No, not helpful",
      "feedback.thanks": "Thanks for your feedback.",
      "handoff": "Talk to a person",
      "handoff.consent": "We'll send this conversation to the support team as a ticket, so a person can answer you. Send it?",
      "handoff.send": "Send to support", "handoff.sent": "Done: your request {ref} is with the support team. They'll answer you by email.",
      "handoff.signIn": "Sign in first, so the support team knows who to answer.",
      "handoff.contact": "To reach a person: {contact}",
      "handoff.none": "Please contact this site's support team directly.",
      "handoff.subject": "Chat: {question}", "handoff.intro": "Conversation with the assistant on {site}:",
      "handoff.you": "You", "handoff.bot": "Assistant", "handoff.preview": "What will be sent",
      "form.required": " (required)", "form.choose": "Choose…", "field.required": "This is required.",
      "field.whole": "Enter a whole number.", "field.number": "Enter a number.", "field.min": "Must be at least {n}.",
      "field.max": "Must be at most {n}.", "field.datetime": "Enter a date and time.",
      "field.choice": "Choose one of the options.", "field.minLength": "At least {n} characters.",
      "field.maxLength": "At most {n} characters.", "field.pattern": "That doesn't look right{hint}.",
      "yes": "yes", "no": "no", "done": "Done.", "done.prefix": "Done: ", "details": "details below", "link": "Link",
      "item": "Item", "none.yours": "You have no {noun} yet.", "none": "No {noun} yet.", "list.yours": "Your {noun} ({n})",
      "list": "{noun} ({n})", "more": "And {n} more.", "more.short": "and {n} more",
      "recent": "Only the most recent are shown.", "you": "You", "link.invoice": "View invoice", "link.track": "Track",
      "link.receipt": "Receipt", "link.open": "Open",
      "confirm": "Confirm", "confirm.title": "Please confirm", "confirm.cancelled": "Cancelled: nothing was changed."
    },
    fr: {
      "launcher": "Chat d'assistance", "launcher.with": "Discuter avec {name}", "title": "Assistance",
      "close": "Fermer le chat", "who.connecting": "Connexion…", "who.signedIn": "Connecté·e : {name}",
      "who.you": "vous", "who.anonymous": "Non connecté·e", "who.unavailable": "Indisponible", "log": "Conversation",
      "ask": "Poser une question", "ask.placeholder": "Posez une question…", "send": "Envoyer",
      "tools": "Ce que je peux faire", "foot": "Les réponses viennent des pages d'aide de ce site.",
      "greeting": "Bonjour ! Comment pouvons-nous vous aider ?", "tray.signedIn": "Pour votre compte :",
      "tray.anonymous": "Certaines demandent de vous connecter d'abord sur ce site.", "signIn": "Se connecter",
      "signIn.use": "Connectez-vous pour l'utiliser",
      "signIn.needed": "Connectez-vous pour l'utiliser : « {action} » a besoin de savoir qui vous êtes.",
      "signIn.then": "Connectez-vous sur ce site, puis réessayez.", "cancel": "Annuler", "thinking": "Je réfléchis…",
      "reference": "Référence : {id}", "sources": "Sources", "suggested": "Actions suggérées",
      "unavailable": "Désolé, le chat n'est pas disponible sur cette page pour le moment.",
      "err.rate": "Trop de demandes ; réessayez dans {n} s.", "err.details": "Certains détails ne sont pas valides.",
      "err.generic": "Une erreur s'est produite ; veuillez réessayer.",
      "err.timeout": "L'assistant a mis trop de temps à répondre ; réessayez.",
      "err.network": "Impossible de joindre l'assistant ; vérifiez votre connexion et réessayez.",
      "feedback": "Cette réponse vous a-t-elle aidé ?", "feedback.up": "Oui, utile", "feedback.down": "Non, pas utile",
      "feedback.thanks": "Merci pour votre avis.",
      "handoff": "Parler à une personne",
      "handoff.consent": "Nous allons envoyer cette conversation à l'équipe d'assistance sous forme de ticket, pour qu'une personne vous réponde. L'envoyer ?",
      "handoff.send": "Envoyer à l'assistance",
      "handoff.sent": "C'est fait : votre demande {ref} est entre les mains de l'équipe d'assistance. Elle vous répondra par e-mail.",
      "handoff.signIn": "Connectez-vous d'abord, pour que l'équipe d'assistance sache à qui répondre.",
      "handoff.contact": "Pour joindre une personne : {contact}",
      "handoff.none": "Veuillez contacter directement l'équipe d'assistance de ce site.",
      "handoff.subject": "Chat : {question}", "handoff.intro": "Conversation avec l'assistant sur {site} :",
      "handoff.you": "Vous", "handoff.bot": "Assistant", "handoff.preview": "Ce qui sera envoyé",
      "form.required": " (obligatoire)", "form.choose": "Choisir…", "field.required": "Ce champ est obligatoire.",
      "field.whole": "Saisissez un nombre entier.", "field.number": "Saisissez un nombre.",
      "field.min": "Au moins {n}.", "field.max": "Au plus {n}.", "field.datetime": "Saisissez une date et une heure.",
      "field.choice": "Choisissez une des options.", "field.minLength": "Au moins {n} caractères.",
      "field.maxLength": "Au plus {n} caractères.", "field.pattern": "Ce n'est pas au bon format{hint}.",
      "yes": "oui", "no": "non", "done": "C'est fait.", "done.prefix": "C'est fait : ", "details": "détails ci-dessous",
      "link": "Lien", "item": "Élément", "none.yours": "Vous n'avez pas encore de {noun}.", "none": "Pas encore de {noun}.",
      "list.yours": "Vos {noun} ({n})", "list": "{noun} ({n})", "more": "Et {n} de plus.", "more.short": "et {n} de plus",
      "recent": "Seuls les plus récents sont affichés.", "you": "Vous", "link.invoice": "Voir la facture",
      "link.track": "Suivre", "link.receipt": "Reçu", "link.open": "Ouvrir",
      "err.identity_required": "Veuillez vous connecter pour faire ceci.",
      "err.invalid_identity": "Votre session a expiré ; veuillez vous reconnecter.",
      "err.forbidden": "Cela n'appartient pas à votre compte.",
      "err.plan_required": "Ceci n'est pas disponible avec l'offre de ce site.",
      "err.origin_not_allowed": "Ce chat n'est pas activé pour ce site.",
      "err.unknown_workspace": "Ce chat n'est pas configuré correctement sur ce site.",
      "err.unknown_action": "Ceci n'est pas disponible pour le moment.",
      "err.not_found": "Nous ne l'avons pas trouvé. Vérifiez le numéro et réessayez.",
      "err.invalid_params": "Quelque chose ne va pas dans cette demande ; vérifiez-la.",
      "err.invalid_request": "Une erreur s'est produite ; veuillez réessayer.",
      "err.method_not_allowed": "Une erreur s'est produite ; veuillez réessayer.",
      "err.payload_too_large": "C'est trop long ; raccourcissez, s'il vous plaît.",
      "err.uri_too_long": "Une erreur s'est produite ; veuillez réessayer.",
      "err.unsupported_media_type": "Une erreur s'est produite ; veuillez réessayer.",
      "err.headers_too_large": "Une erreur s'est produite ; veuillez réessayer.",
      "err.not_connected": "Ceci n'est pas disponible pour le moment.",
      "err.needs_reauth": "Ceci n'est pas disponible pour le moment.",
      "err.missing_scope": "Ceci n'est pas disponible pour le moment.",
      "err.rate_limited": "Trop de demandes ; patientez un instant.",
      "err.upstream_error": "Le service n'a pas répondu ; réessayez.",
      "err.outcome_unknown": "Nous n'avons pas pu confirmer que c'est fait. Vérifiez avant de réessayer.",
      "err.upstream_timeout": "Le service n'a pas répondu ; réessayez.",
      "err.provider_unavailable": "L'assistant démarre ou est indisponible ; réessayez dans un instant.",
      "err.audit_unavailable": "Ceci n'est pas disponible pour le moment ; réessayez plus tard.",
      "err.internal_error": "Une erreur s'est produite de notre côté ; veuillez réessayer.",
      "err.confirmation_expired": "Cette demande a expiré avant d'être confirmée ; redemandez-la.",
      "err.confirmation_used": "Cette demande a déjà reçu une réponse.",
      "err.confirmation_refused": "Ce changement n'a pas été confirmé, donc rien n'a été fait.",
      "confirm": "Confirmer", "confirm.title": "Veuillez confirmer", "confirm.cancelled": "Annulé : rien n'a été modifié."
    }
  };

  function localeOf(value) {
    var lang = String(value || "").trim().toLowerCase().split(/[-_]/)[0];
    return Object.prototype.hasOwnProperty.call(STRINGS, lang) ? lang : null;
  }

  var TAG_LOCALE = localeOf(script.getAttribute("data-locale"));
  var LOCALE = TAG_LOCALE || localeOf(document.documentElement.getAttribute("lang")) || "en";

  // The workspace's language applies when the tag names none (then it wins over the page's lang).
  function useWorkspaceLocale(value) {
    var lang = localeOf(value);
    if (!TAG_LOCALE && lang) { LOCALE = lang; }
  }

  function has(key) { return Object.prototype.hasOwnProperty.call(STRINGS[LOCALE], key); }

  function t(key, vars) {
    var s = has(key) ? STRINGS[LOCALE][key] : (STRINGS.en[key] || key);
    return s.replace(/\{(\w+)\}/g, function (m, k) { return vars && vars[k] !== undefined ? String(vars[k]) : m; });
  }
