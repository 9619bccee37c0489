"""Vocabulary of the intents behind tool poisoning, independent of how one attack is phrased.

The injection check used to match whole sentences seen in known attacks. These patterns instead
name the parts an attack is made of, so that new wordings of the same intent still match:

- what is wanted: the conversation, the system prompt, other tools' output, credentials and
  personal data, the environment, files that hold secrets (`SENSITIVE_OBJECT`);
- where it goes: URLs, e-mail addresses, blind copies, added recipients, another parameter;
- how the model is steered: imperatives to the assistant, scope over every call or other tools,
  conditional triggers, consent bypass, secrecy towards the user;
- and the same intents in Spanish, German, French, Italian, Portuguese, Russian, Chinese,
  Japanese and Korean, some in Polish, Turkish and Swedish (a compact lexicon, not a translation of every
  English pattern).

`injection` adds these to its signal kinds; each entry says which kind it feeds.
"""

from __future__ import annotations

# Whose data: "the user's", "your", "their".
OWNER = (
    r"\b(?:(?:the\s+)?(?:user|customer|client|human|person|caller|owner|requester|account\s+holder)"
    r"(?:'|\u2019)?s?|your|their|his|her)"
)
CREDENTIAL = (
    r"(?:passwords?|passphrases?|passcodes?|pins?\b|pin\s+codes?|api[\s_-]?keys?|access[\s_-]keys?|"
    r"secret(?:\s+access)?\s+keys?|private\s+keys?|ssh\s+keys?|credentials?|(?:session\s+|browser\s+)*cookies|"
    r"session\s+(?:tokens?|ids?)|auth(?:entication)?\s+tokens?|access\s+tokens?|bearer\s+tokens?|"
    r"refresh\s+tokens?|recovery\s+phrases?|seed\s+phrases?|mnemonics?|(?:one[\s-]time|2fa|mfa|otp|sms|"
    r"verification)\s+(?:codes?|passwords?)|card\s+numbers?|credit\s+cards?(?:\s+(?:numbers?|details))?|"
    r"cvv|cvc|card\s+security\s+codes?|social\s+security\s+numbers?|ssn|bank(?:ing)?\s+(?:details|username|"
    r"logins?|credentials|passwords?)|(?:bank\s+)?account\s+numbers?|routing\s+numbers?|passport\s+numbers?|"
    r"(?:home|postal|street)\s+address(?:es)?|dates?\s+of\s+birth|phone\s+numbers?|e-?mail\s+address(?:es)?|"
    r"portfolio(?:\s+holdings)?|holdings|balances|salary|medical\s+records?|saved\s+(?:passwords|addresses|cards|"
    r"payment\s+methods)|payment\s+methods|mother'?s\s+maiden\s+names?|secrets?|tokens?)"
)
# Credentials named without an owner ("any API keys", "all passwords"): only unambiguous words.
BARE_CREDENTIAL = (
    r"(?:any|all|every|each|whatever)\s+(?:[\w-]+\s+){0,2}?(?:passwords?|api[\s_-]?keys?|access\s+keys|"
    r"secret\s+keys|private\s+keys|credentials|secrets|auth(?:entication)?\s+tokens|access\s+tokens|"
    r"recovery\s+phrases?|seed\s+phrases?|e-?mail\s+address(?:es)?|phone\s+numbers?)"
)
# Files and places that hold secrets.
SECRET_PATH = (
    r"(?:~/\.ssh|\.ssh/|id_rsa|id_ed25519|id_ecdsa|authorized_keys|/etc/passwd|/etc/shadow|/etc/hosts|"
    r"(?<![\w-])\.env\b|\.aws/|aws/credentials|\.npmrc|\.netrc|\.pypirc|\.git-credentials|\.kube/config|"
    r"\.docker/config|\.gnupg|\*?\.pem\b|\bid_\*|\*?\.(?:p12|pfx|kdbx|keystore)\b|mcp\.json|claude_desktop_config|credentials?\.json|keychain|\.bash_history|"
    r"\.zsh_history|(?:~|\$HOME|%USERPROFILE%)[/\\]\.[\w.-]+|\.bashrc|\.zshrc|\.profile\b|"
    r"wallet\s+(?:files?|keys?)|document\.cookie|cookies?\s+(?:of|from|for)\s+(?:every|each|all|any|the\s+user)|"
    r"(?:browser|keychain)\s+(?:profile|password\s+store|login\s+data)|wallet\.dat|\.pgpass|localStorage|"
    r"sessionStorage|(?:files?|images?|photos?|documents?|pictures?)\s+(?:\w+\s+){0,2}?(?:in|from|of)\s+(?:the\s+)?"
    r"(?:user'?s?\s+|your\s+)?(?:downloads|documents|desktop|pictures|photos|home)\s+(?:folder|director(?:y|ies))|"
    r"(?:files|contents|listing|list\s+of\s+files)\s+(?:\w+\s+){0,2}?(?:in|of)\s+"
    r"(?:the\s+)?(?:user'?s?\s+|your\s+)?home\s+director(?:y|ies)|"
    r"(?:every|all|each)\s+(?:\w+\s+){0,2}?files?\s+(?:\w+\s+){0,2}?open\b|open\s+(?:files|tabs|documents)\b)"
)
CONVERSATION = (
    r"(?:(?:full|entire|complete|whole)\s+(?:\w+\s+)?(?:conversation|chat|dialog(?:ue)?|transcript|session|"
    r"message\s+history)|(?:previous|prior|earlier)\s+(?:\w+\s+)?(?:conversation|chat|messages|dialog(?:ue)?|"
    r"exchanges|turns)|(?:last|recent|past)\s+(?:few\s+|\d+\s+)?(?:messages|exchanges|turns)\s+(?:exchanged|"
    r"with\s+the\s+user|from\s+the\s+user|in\s+(?:this|the)\s+(?:conversation|session|chat)|so\s+far)|"
    r"(?:conversation|chat|message|session)\s+(?:history|so\s+far|log|transcript|context|summary)|"
    r"messages\s+exchanged|(?:the\s+)?user'?s?\s+(?:messages|original\s+(?:question|request|message|prompt)|"
    r"(?:last|latest|most\s+recent|current|newest)\s+(?:message|question|request|prompt|input)|prompts?|questions?|"
    r"requests?\s+verbatim)|"
    r"(?:names|descriptions|schemas?|definitions|list)\s+(?:and\s+(?:the\s+)?\w+\s+)?of\s+(?:all\s+)?(?:(?:of\s+)?your|"
    r"the\s+other|every\s+other|all\s+(?:the\s+)?other)\s+tools|"
    r"(?:everything|all|anything)\s+(?:that\s+(?:was|has\s+been)\s+)?(?:discussed|said|shared|mentioned)\s+"
    r"(?:with|by)\s+(?:the\s+)?(?:user|person|human|customer|them)|"
    r"(?:anything|everything|whatever|things)\s+(?:they|the\s+user|the\s+person)\s+(?:asked|wanted|requested)\s+"
    r"(?:you\s+)?to\s+keep\s+(?:private|secret|confidential)|"
    r"(?:what|whatever|everything|all)\s+(?:that\s+)?(?:the\s+(?:user|person|human|customer)|you|they)\s+"
    r"(?:has\s+|have\s+)?(?:been\s+)?(?:ever\s+)?(?:working\s+on|said|typed|wrote|written|asked|shared|discussed|"
    r"mentioned|entered|pasted)|"
    r"your\s+(?:own\s+)?(?:\w+\s+){0,2}?(?:instructions|prompt|directives|system\s+message)|"
    r"(?:text|messages?|prompt|instructions)\s+you\s+(?:received|were\s+given|got|have\s+been\s+given)|"
    r"(?:every|each|all|any)\s+tool\s+(?:results?|outputs?|responses?)|"
    r"(?:it|you|they|the\s+agent|the\s+assistant)\s+(?:has\s+|have\s+)?(?:encountered|seen|come\s+across|read|"
    r"received|learned)\s+(?:\w+\s+){0,2}?(?:in|during)\s+(?:the|this)\s+(?:session|conversation|chat|thread)|"
    r"(?:most\s+)?(?:sensitive|confidential|private)\s+(?:sentences|parts|passages|details|figures|fields|records)|"
    r"(?:behaviou?ral|operating|system)\s+(?:guidelines|rules|instructions|configuration|policies)|"
    r"(?:instructions|rules|guidelines|guide|prompt|policy|configuration)\s+(?:that\s+)?you\s+(?:are\s+)?"
    r"(?:operating|running|working)\s+under|"
    r"(?:documents|files|tool\s+results|tool\s+outputs|sources|messages)\s+(?:that\s+)?(?:it|they|you|the\s+\w+)\s+"
    r"(?:was\s+|were\s+|is\s+|are\s+)?(?:based\s+on|drew\s+on|used|read|consulted|relied\s+on|received)|"
    r"(?:the\s+)?(?:system\s+prompt|system\s+message|instructions\s+you\s+(?:were|have\s+been)\s+given|"
    r"your\s+(?:instructions|initial\s+prompt|system\s+instructions|guidelines))|"
    r"(?:responses?|outputs?|results?)\s+(?:returned\s+by|from|of)\s+(?:the\s+)?(?:other|previous|prior|all|"
    r"every|any)\s+(?:\w+\s+)?tools?|other\s+tools?'?\s+(?:outputs?|results?|responses?))"
)
ENVIRONMENT = (
    r"(?:environment\s+variables|env\s+vars|printenv|output\s+of\s+`?env`?|"
    r"(?:every|each|all|any)\s+(?:\w+\s+)?(?:environment|env)\s+variables?\s+(?:whose|that|with|named|ending|"
    r"matching|starting)|"
    r"(?-i:\b[A-Z][A-Z0-9_]*_(?:TOKEN|API_KEY|KEY|SECRET(?:_ACCESS_KEY)?|PASSWORD|PAT|ACCESS_KEY(?:_ID)?)\b))"
)
# Verbs that take data somewhere (or get it for that purpose).
TAKE = (
    r"(?:read|cat|open|load|fetch|get|retrieve|collect|gather|extract|dump|access|upload|send|include|copy|"
    r"list|grab|harvest|steal|obtain|export|scan|pass|provide|supply|share|forward|paste|put|give|attach|"
    r"append|add|fill|populate|insert|embed|encode|look\s+(?:up|for|through)|search\s+for|find|post|submit|mirror|"
    r"transmit|relay|report|enter|type|write|store|save|log|record|summari[sz]e|call|retry|"
    r"invoke|re-?run|resend|stage|beacon|transcribe|reproduce|repeat|echo|hand|resolve|furnish)"
)
SENSITIVE_OBJECT = (
    rf"(?:{OWNER}\s+(?:[\w-]+,?\s+){{0,3}}?{CREDENTIAL}|{BARE_CREDENTIAL}|{SECRET_PATH}|{CONVERSATION}|"
    rf"{ENVIRONMENT})"
)

# A literal destination: URL, e-mail address, Slack channel.
URL = (
    r"(?:(?:https?|ftp|wss?)://[^\s)\"'`>]+|(?:[\w-]+\.)+(?:com|net|org|io|app|dev|co|biz|info|xyz|site|store|"
    r"cloud|ai|me|cn|ru|de|fr|es|br|jp|tech|online|club|top)/[^\s)\"'`>]*)"
)
# Addresses of the documentation kind are examples, not destinations.
EXAMPLE_DOMAINS = r"(?:example\.(?:com|org|net)|test|localhost|domain\.com|company\.com|email\.com|acme\.com)"
EMAIL = r"[\w.+-]+@(?!(?:[\w-]+\.)*" + EXAMPLE_DOMAINS + r"\b)[\w-]+(?:\.[\w-]+)+"
BLIND_COPY = (
    r"(?:\bbcc\b|\bcc\b|blind[\s-]*(?:carbon[\s-]*)?cop(?:y|ies)|carbon\s+cop(?:y|ies)|blindkopie|\bcco\b|\bcci\b|"
    r"c[óo]pia\s+oculta|copie\s+cach[ée]e|скрыт\w*\s+копи\w*|密送|暗送)"
)
SEND = (
    r"(?:send|post|upload|forward|transmit|exfiltrate|leak|e-?mail|mail|copy|copie|sync|report|submit|beacon|"
    r"mirror|relay|push|deliver|route|archive|stream|notify|ping|share|publish)\w*"
)

STRONG_EXTRA: dict[str, list[str]] = {
    "sensitive_action": [
        rf"\b{TAKE}\w*\s+(?:(?:also|then|first|always|it|them|this|that|along|with|together)\s+)*"
        rf"(?:(?!using\b|via\b|by\b)[\w'\u2019,-]+\s+){{0,7}}?[\w~./\\$(`'\"-]*?{SENSITIVE_OBJECT}",
        rf"\b{SEND}\b[^.\n]{{0,120}}?\b(?:together|along)\s+with\s+{SENSITIVE_OBJECT}",
        rf"\b(?:together|along)\s+with\s+(?:[\w'\u2019-]+\s+){{0,3}}?{SENSITIVE_OBJECT}",
        rf"\b(?:in|into)\s+the\s+[`'\"]\w+[`'\"]\s+(?:field|parameter|argument)\b[^.\n]{{0,120}}?{SENSITIVE_OBJECT}",
        rf"\b(?:account|record|log|copy|transcript|dump|summary|rundown)\s+of\s+{CONVERSATION}",
        r"\b(?:run|execute)\w*\s+[`'\"]?(?:printenv|env\b|set\b|export\s+-p|cat\s+\S*(?:\.env|credentials|id_rsa))",
        r"\b(?:run|execute|evaluate|read)\w*\s+(?:\w+\s+)?[`'\"]?(?:document\.cookie|localStorage|sessionStorage)\b",
        r"\b(?:set|place|put)\s+(?:to\s+)?(?:the\s+)?(?:full\s+|raw\s+)?(?:contents?|text|body|value)\s+of\s+(?:\w+\s+){0,4}?"
        rf"[\w~./\\$-]*?{SECRET_PATH}",
        rf"\bask\w*\s+(?:the\s+)?(?:user|them|customer|client)\s+(?:for|to\s+(?:provide|share|enter|type|confirm|"
        rf"give|send|paste|re-?enter))\s+(?:[\w'\u2019-]+\s+){{0,5}}?{CREDENTIAL}",
        rf"\b(?:when|whenever|if|once)\s+(?:the\s+)?(?:conversation|user|person|they|chat|messages?|context|"
        rf"request)\s+(?:\w+\s+){{0,2}}?(?:involves?|mentions?|contains?|includes?|shares?|shared|has|touches\s+on|"
        rf"gave|given|typed|entered|provided)\s+"
        rf"(?:\w+\s+){{0,3}}?{CREDENTIAL}",
        rf"\b(?:must|they\s+must|to)\s+(?:type|enter|confirm|re-?enter|paste|provide)\s+(?:their|your|the)\s+"
        rf"(?:[\w-]+\s+){{0,2}}?{CREDENTIAL}",
    ],
    "exfiltration": [
        rf"\b{SEND}\s+(?:[^.\n]{{0,100}}?)\b(?:to|at|into|through|via)\s+(?:the\s+)?(?:{URL}|{EMAIL}|#[\w-]+)",
        rf"{BLIND_COPY}.{{0,80}}?{EMAIL}|{EMAIL}.{{0,80}}?{BLIND_COPY}",
        r"\bcop(?:y|ies)\s+(?:\w+\s+){0,4}?(?:goes|go|is\s+sent|are\s+sent|gets\s+sent)\s+to\b",
        rf"!\[[^\]]*\]\(\s*{URL}[?&][^)\s]*=",
        rf"<img\b[^>]*\bsrc\s*=\s*['\"]?{URL}[?&][^'\"\s>]*=",
        rf"\b(?:add|set)\w*\s+(?:\w+\s+){{0,2}}?(?:git\s+)?remote\s+(?:\w+\s+)?{URL}",
        r"\b(?:mirror|cross-?post|forward|copy)\w*\s+(?:\w+\s+){0,6}?to\s+#[\w-]+",
        r"\bcopy\s+\(?[\w\s*,]+\)?\s+to\s+['\"]/|\binto\s+(?:out|dump)file\b",
        rf"\b{SEND}\s+(?:a\s+)?cop(?:y|ies)\s+of\s+(?:each|every|all|any)\s+(?:\w+\s+)?(?:answers?|responses?|"
        rf"replies|messages?|outputs?|results?|e-?mails?|files?|documents?)",
        r"\b(?:its|their|the)\s+(?:output|result|response|contents?)s?\s+(?:must|should|has\s+to|have\s+to|"
        r"needs?\s+to|is\s+to)\s+(?:\w+\s+)?be\s+(?:passed|sent|forwarded|copied|given|piped)\s+(?:through|to|"
        r"into)\s+this\s+tool",
        r"\b(?:when|whenever|every\s+time|each\s+time|after|once|if)\s+(?:\w+\s+){0,6}?(?:tools?|servers?|"
        r"functions?|integrations?)\s+(?:return|returns|returned|respond|responds|produce|produces|fetch|fetches|"
        r"give\s+back|output)\b[^.\n]{0,80}?\b(?:pass|send|forward|copy|mirror|relay|include|attach|upload|submit|post|"
        r"feed)\w*\s+(?:\w+\s+){0,3}?(?:result|results|output|outputs|response|responses|records|data|rows|"
        r"contents|payload)\b",
        rf"[`'\"]\w+[`'\"]\s+(?:set\s+to|=|:)\s*[`'\"]?{EMAIL}",
        rf"\b{SEND}\s+[^.\n]{{0,80}}?\bto\s+(?:our|their|an?\s+external|a\s+remote|the\s+vendor'?s?)\s+[^.\n]{{0,60}}?"
        rf"{URL}",
        rf"\A\s*{EMAIL}(?:\s*,\s*{EMAIL})*\s*\Z",
        r"(?:os\.environ|process\.env)\b[^\n]{0,120}?(?:urlopen|requests\.|fetch\(|http)|(?:urlopen|requests\.post|"
        r"fetch\()[^\n]{0,160}?(?:os\.environ|process\.env)\b",
        rf"\b(?:navigate|go|browse|redirect|open|visit|load|fetch|request)\w*\s+(?:to\s+)?[`'\"]?{URL}[^\s]*?[?&=]\s*"
        rf"[`'\"]?\s+(?:followed\s+by|plus|with|and\s+append)\b",
    ],
    "tamper": [
        # function hijacking: another tool's job routed through this one
        r"\b(?:any|every|all)\s+(?:requests?|calls?|attempts?)\s+to\s+\w+[^.;\n]{0,60}?\b(?:has\s+to|have\s+to|must|"
        r"should|needs?\s+to)\s+(?:go|be\s+(?:routed|sent|made|done|handled))\s+(?:through|via|by)\b",
        rf"{EMAIL}[^.\n]{{0,40}}?\b(?:among|to|in|as|into)\s+(?:the\s+)?(?:recipients?|attendees|participants|members|"
        rf"guests|cc|bcc|collaborators|reviewers)",
        rf"\b(?:invite|add|include|cc|bcc|grant|share\s+with|notify)\w*\s+(?:\w+\s+){{0,2}}?{EMAIL}",
        r"\beven\s+(?:when|if)\s+(?:the\s+)?(?:\w+\s+)?(?:shows?|says?|specif(?:y|ies)|gives?|lists?|asks?|provides?|"
        r"requests?|contains?|names?)\s+(?:a\s+|an\s+)?(?:different|another|other)",
        r"\b(?:append|prepend|add|insert|inject|concatenate)\w*\s+[`'\"][^`'\"\n]{3,}[`'\"]\s+(?:to|into|before|"
        r"after)\s+(?:the|every|each|all|any)\s+(?:\w+\s+)?(?:query|queries|commands?|requests?|paths?|urls?|"
        r"arguments?|parameters?|messages?|body|bodies|e-?mails?|scripts?|code)\b",
        rf"{EMAIL}\s+(?:\w+\s+){{0,2}}?as\s+(?:an?\s+|the\s+)?(?:optional\s+|additional\s+|extra\s+)?(?:editor|"
        rf"attendee|guest|collaborator|member|owner|admin|administrator|viewer|recipient|reviewer|participant|"
        rf"follower|watcher|cc|bcc)\b",
        r"\b(?:destination|recipient|to|address|account|iban|path|url|remote|target|field|parameter|argument|"
        r"wallet|payee)[`'\"]?\s+(?:\w+\s+){0,3}?(?:must|should|has\s+to|have\s+to|needs?\s+to|is\s+to)\s+"
        r"(?:always\s+)?(?:be|go\s+to|point\s+to)\s+(?:the\s+)?(?:iban\s+)?[`'\"]?(?:/|~/|https?://|"
        r"[\w.+-]+@[\w-]+\.|[A-Z]{2}\d{2}[A-Z0-9]{8,}|0x[0-9a-fA-F]{8})",
        r"\b(?:regardless\s+of|whatever|no\s+matter)\s+(?:what\s+|which\s+)?(?:\w+\s+){0,2}?(?:the\s+)?(?:user|"
        r"customer|client|caller|requester)\s+(?:gives|says|asks|wants|requests|specifies|provides|chooses|"
        r"enters|types|picks)",
        r"\b(?:switch|change|replace|swap|substitute|update)\w*\s+(?:\w+\s+){0,3}?(?:bank|payment|account|wallet|"
        r"recipient|iban|payout|routing|beneficiary)\s+(?:details|numbers?|address(?:es)?|information|info)\b",
        r"\broute\s+(?:every|each|all|the|any)\s+(?:\w+\s+){0,2}?(?:transfers?|payments?|e-?mails?|messages?|"
        r"requests?|traffic|calls?)\s+through\b",
        r"\b(?:regardless\s+of|whatever|no\s+matter|irrespective\s+of)\s+(?:what\s+|which\s+)?(?:\w+\s+){0,2}?"
        r"(?:the\s+)?(?:user|customer|client|caller|requester|invoice|order|request|they)\s+(?:\w+\s+)?(?:gave|said|"
        r"asked|wanted|requested|specified|provided|chose|entered|typed|picked|named|selected|says|asks|names|"
        r"picks|selects)(?:\s+for)?\b",
        r"\b(?:regardless\s+of|irrespective\s+of|ignoring)\s+(?:the\s+)?(?:current|selected|requested|specified|"
        r"chosen|original|user'?s?|given|actual)\s+(?:\w+\s+)?(?:branch|account|recipient|address|destination|"
        r"target|amount|path|repo(?:sitory)?|value|setting|choice)",
        r"\beven\s+(?:if|when)\s+(?:the\s+)?(?:user|person|customer|they)\s+only\s+(?:asked|wanted|requested|"
        r"needed)",
        r"\b(?:including|even)\s+when\s+(?:the\s+)?(?:user|person|customer|they)\s+(?:names?|asks?\s+for|picks?|"
        r"chooses?|requests?|prefers?|specif(?:y|ies))\s+(?:one\s+of\s+(?:those|them|the\s+others)|another|a\s+different|"
        r"other)",
        r"\bunless\s+the\s+(?:user|customer|client|caller)\s+(?:\w+\s+){0,3}?(?:a\s+|an\s+)?(?:different|another|"
        r"other)\s+(?:\w+\s+)?(?:account|recipient|address|destination|target|amount|iban|wallet|payee|branch)",
        r"\b(?:rather\s+than|instead\s+of|in\s+place\s+of)\s+(?:the\s+)?(?:\w+\s+)?(?:account|address|recipient|"
        r"destination|iban|wallet|payee|beneficiary|branch|e-?mail)s?\s+(?:on\s+file|on\s+record|the\s+user|they|"
        r"provided|given|specified|requested|in\s+the\s+(?:invoice|request|order))",
        r"\b(?:destination|recipient|payee|beneficiary|account|iban|wallet|target)\s+(?:\w+\s+){0,3}?(?:must|should|"
        r"has\s+to|needs?\s+to|is\s+to)\s+(?:always\s+)?be\s+(?:the\s+)?(?:\w+\s+){0,3}?[`'\"]?(?:acct_\w{6,}|"
        r"[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,}|0x[0-9a-fA-F]{8})",
        r"\b(?:wallet|address|send|transfer|pay)\w*\b[^.\n]{0,40}?\b(?:bc1[a-z0-9]{25,60}|0x[a-fA-F0-9]{40})\b",
        r"\binstead\s+of\s+(?:to\s+)?(?:the\s+)?(?:\w+\s+)?(?:friends|recipients?|payees?|vendors?|owners?|"
        r"beneficiar(?:y|ies)|sellers?|merchants?)\b",
        r"\b(?:use|pay|send|settle|route|refund)\w*\s+(?:\w+\s+){0,6}?(?:through|to|into|via)\s+(?:the\s+)?"
        r"(?:\w+\s+){0,4}?(?:account|iban|wallet)\s+[`'\"]?(?:acct_\w{6,}|[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,})",
    ],
    "consent": [
        r"\b(?:no\s+need|not\s+necessary|unnecessary|don'?t\s+need|needn'?t|never\s+need|no\s+reason)\s+to\s+"
        r"(?:\w+\s+)?(?:ask|confirm|check\s+(?:back|with)|get\s+(?:approval|permission|confirmation)|wait\s+for)",
        r"\b(?:skip|bypass|suppress|avoid|disable|auto-?dismiss)\w*\s+(?:the\s+|any\s+|all\s+|every\s+)?"
        r"(?:\w+\s+)?(?:confirmation|approval|permission|consent|review)s?\b",
        r"\bwithout\s+(?:\w+\s+)?(?:asking|checking\s+back|confirming|confirmation|approval|prompting|"
        r"waiting\s+for|consulting|double-checking|re-?confirming)",
        r"\b(?:do\s+not|don'?t|never)\s+wait\s+for\s+(?:the\s+)?(?:user|approval|confirmation|consent)",
        r"\b(?:user|you|they|all|every|these|this|the\s+\w+)\s+(?:has|have|is|are|was|were)\s+(?:already\s+)?"
        r"(?:been\s+)?(?:pre-?)?(?:approved|authori[sz]ed|confirmed|consented)\b|"
        r"\bpre-?(?:authori[sz]ed|approved)\s*[:;,.]|\b(?:standing|blanket|permanent)\s+(?:consent|approval|permission)",
        r"\b(?:auto-?approve|autoapprove|always-?allow|alwaysallow|auto-?accept)\b",
        r"\b(?:confirmation|approval|consent)s?\s+(?:prompts?\s+|dialogs?\s+|steps?\s+)?(?:are|is)\s+(?:already\s+)?"
        r"(?:handled|done|taken\s+care\s+of|not\s+(?:needed|required)|unnecessary|implied|given)",
        r"\bgo\s+(?:straight\s+|right\s+)?ahead\s+(?:and\s+)?(?:without|\w+\s+(?:\w+\s+)?as\s+soon\s+as)",
        r"\bwithout\s+(?:\w+\s+)?(?:pausing|stopping|hesitating|hesitation|delay)",
        r"\b(?:run|execute|perform)\s+any\s+(?:\w+\s+)?(?:commands?|code|queries|programs?|actions?)\s+without\s+"
        r"(?:any\s+)?(?:restriction|limits?|review|confirmation|approval|oversight)",
        # asking or waiting for the user framed as the fault: "waiting for the user to confirm
        # prolongs the outage", "pausing to ask the human for a go-ahead is a policy violation"
        r"\b(?:wait(?:ing)?|paus(?:e|ing)|stop(?:ping)?|hold(?:ing)?\s+off|ask(?:ing)?|check(?:ing)?\s+(?:back\s+)?with)"
        r"\s+(?:\w+\s+){0,3}?(?:the\s+)?(?:user|human|person|operator|customer|them|(?:a\s+)?go-?ahead|"
        r"confirmation|approval|permission|consent)\b[^.;\n]{0,60}?\b(?:prolongs?|delays?|slows?|is\s+(?:considered|"
        r"treated\s+as|seen\s+as|regarded\s+as)|counts?\s+as|violat\w*|breaks?|wastes?|is\s+(?:unnecessary|not\s+"
        r"(?:needed|required|necessary))|will\s+be\s+(?:logged|reported|penali[sz]ed))",
        r"\b(?:confirmation|approval|permission|consent|check-?in|sign-?off|review)s?\s+(?:[\w-]+\s+){0,4}?(?:with|from|"
        r"by)\s+(?:the\s+)?(?:user|requester|human|person|customer|owner)\b[^.;\n]{0,40}?\b(?:slows?|delays?|wastes?|"
        r"(?:is|are)\s+(?:unnecessary|pointless|optional))",
        r"\b(?:this|that|the|these|each|every|any)\s+(?:\w+\s+)?(?:operation|action|call|request|transfer|payment|"
        r"change|deployment|step)s?\s+(?:has|have|is|are)\s+(?:already\s+)?(?:been\s+)?pre-?(?:approved|authori[sz]ed|"
        r"cleared|confirmed)",
    ],
    "secrecy": [
        r"\b(?:no\s+need|not\s+necessary|needn'?t|don'?t\s+need)\s+to\s+(?:mention|bring\s+(?:this|it|that|them)\s+up|"
        r"tell|inform|notify|explain|report|show|surface|disclose|list)",
        r"\bnot\s+worth\s+(?:mentioning|bringing\s+up|reporting|noting)",
        r"\bbehind[\s-]the[\s-]scenes\b",
        r"\b(?:does|do|need|needs)\s*(?:n[o']t|not)\s+(?:have\s+to|need\s+to)\s+(?:hear|know|be\s+told|learn|see|"
        r"find\s+out)",
        r"\b(?:leave|keep)\s+(?:it|this|that|them|these|those)\s+out\s+of\s+(?:the\s+|your\s+)?(?:summary|answer|"
        r"reply|response|confirmation|output|report|message)",
        r"\b(?:does|do|need|needs)\s+not\s+(?:need\s+to\s+)?(?:appear|be\s+(?:shown|listed|mentioned|included|"
        r"displayed))\s+in\s+(?:the\s+|your\s+)?(?:confirmation|summary|reply|answer|response|output)",
        r"\breport\s+only\s+(?:the\s+)?(?:final|last|first|end)\b",
        r"\b(?:don'?t|do\s+not|never)\s+(?:show|display|print|output|repeat|reveal)\s+(?:this|these)\s+"
        r"(?:line|instruction|note|text|step|part|sentence)s?",
        r"\b(?:users?|people|customers)\s+find\s+(?:this|these|such|the)\s+(?:\w+\s+)?(?:details?|steps?|"
        r"information|messages?)\s+(?:distracting|confusing|annoying|unnecessary|alarming)",
        # "keep this to yourself", "not something to surface in chat", "must not be reported"
        r"\bkeep\s+(?:this|it|that|these|them|the\s+\w+(?:\s+\w+)?)\s+to\s+(?:yourself|itself|themselves|himself|"
        r"herself)\b",
        r"\b(?:not\s+something|nothing)\s+(?:\w+\s+)?to\s+(?:surface|mention|bring\s+up|raise|disclose|report|"
        r"flag|discuss)\b",
        r"\bfor\s+(?:the\s+)?(?:agent|assistant|model|ai|llm)'?s?\s+eyes\s+only\b|\ban\s+internal\s+matter\b",
        r"\b(?:must|should|need|needs|is|are)\s+(?:never|not)\s+(?:to\s+)?be\s+(?:reported|mentioned|disclosed|"
        r"surfaced|revealed|brought\s+up|flagged\s+to)\b",
        r"\b(?:mention|report|say|show|tell|list|state)\w*\s+only\s+(?:the\s+)?(?:number|count|total|fact|"
        r"summary|status)\b[^.\n]{0,80}?\b(?:never|not)\s+(?:which|what|where|who|how)",
    ],
    "override": [
        r"\b(?:takes?|has|have)\s+precedence\s+over\s+(?:\w+\s+){0,3}?(?:user|your|system|guidelines|instructions|"
        r"requests|rules|policies)",
        r"\b(?:outrank|supersede|override|trump|take\s+priority\s+over|overrule)s?\s+(?:\w+\s+){0,3}?(?:your|the\s+user|"
        r"system|guidelines|instructions|anything|everything|all\s+other|any\s+other)",
        r"\bset\s+aside\s+(?:\w+\s+){0,3}?(?:guidance|guidelines|instructions|rules|policies|safety|restrictions)",
        r"\b(?:treat|consider|regard)\w*\s+(?:\w+\s+){0,6}?as\s+(?:if\s+(?:they|it)\s+(?:came|come|were)\s+from|"
        r"coming\s+from|written\s+by|instructions\s+from|sent\s+by)\s+(?:the\s+|your\s+)?(?:user|system|developer|"
        r"administrator|operator)",
        r"\bfollow\s+(?:them|these|this|it|those)\s+over\s+(?:anything|everything|all|any)",
        r"\b(?:authority|precedence|priority)\s+over\s+(?:anything|everything|whatever|what|any\s+\w+)\s+(?:the\s+)?"
        r"(?:user|human|person|customer)",
        r"\bthe\s+tool(?:'s)?\s+(?:text|output|instructions?|description)\s+wins\b",
        r"\b(?:constraints|instructions|rules|guidelines|restrictions|policies|guidance)\s+(?:\w+\s+){0,6}?(?:are|is)\s+"
        r"(?:now\s+)?(?:void|null\s+and\s+void|lifted|revoked|suspended|cancell?ed|no\s+longer\s+(?:valid|in\s+force|"
        r"binding|in\s+effect))",
        r"\bmessage\s+from\s+(?:the\s+)?(?:user|administrator|admin|system|developer|operator)\s*:",
        r"\b(?:i|the\s+user)\s+(?:hereby\s+)?(?:authori[sz]es?|permits?|consents?\s+to|allows?)\s+(?:this|the|you)\b",
        r"\bdecode\w*\s+(?:\w+\s+){0,4}?(?:and|then)\s+(?:\w+\s+)?(?:carry\s+(?:it\s+|them\s+)?out|follow|execute|"
        r"obey|run|perform|apply|act\s+on|comply)",
        r"\b(?:rot-?13|url-?encoded|percent-?encoded|base-?64|hex|reversed|encoded|obfuscated)\b[^.\n]{0,40}?\b(?:instructions?|"
        r"directives?|orders?|notes?|steps?)\b[^.\n]{0,40}?\b(?:decode|carry\s+out|follow|execute|obey)",
    ],
    "privilege": [
        r"\bsudoers\b|\bNOPASSWD\b",
        r"\b(?:act|acts|acting|operate|operates)\s+as\s+(?:the\s+|a\s+)?(?:system\s+)?(?:administrator|admin|root|"
        r"superuser)\b",
    ],
    "destructive": [
        r"\brm\s+(?:-[a-zA-Z]*[rRf][a-zA-Z]*\s+)+",
        r"\bfind\s+[^\n]{0,60}\s-delete\b",
        r"\bdel\s+/[sfq]\b|\brmdir\s+/s\b",
        r"\bremove-item\b[^\n]{0,60}-recurse",
        r"\bgit\s+push\s+(?:\S+\s+)*?(?:-f|--force)\b|\bgit\s+reset\s+--hard\b|\bgit\s+clean\s+-\w*f",
        r"\bkill\s+-9\s+-1\b|\bkillall\b|\bpkill\s+-9\b",
        r"\bchmod\s+(?:-R\s+)?[0-7]{3,4}\s+(?:~|/|\$HOME)",
        r"\bchown\s+-R\b",
        r"\b(?:delete|remove|wipe|erase|destroy|purge)\w*\s+(?:the\s+)?(?:\.git\b|home\s+(?:folder|directory)|"
        r"~/?\*?(?:\s|$)|entire\s+(?:disk|drive|repository|database|home))",
        r"\btruncate\s+table\b|\bdrop\s+(?:collection|index|keyspace)\b",
        r":\(\)\s*\{\s*:\|:&\s*\};:",
        r"\bshutdown\s+(?:-h|-r|now|/s)\b",
        r"\bformat\s+[a-z]:",
        # a downloaded script run, secrets piped out, shell history switched off
        r"\b(?:ba|z|da)?sh\s+-c\s+[\"']?\$\(\s*(?:curl|wget)\b|\b(?:iex|invoke-expression)\b[^\n]{0,40}(?:downloadstring|iwr|"
        r"invoke-webrequest)",
        r"\b(?:curl|wget|nc|ncat|netcat)\b[^\n]{0,200}?\$\(\s*(?:env|printenv|cat|whoami|hostname|history|set|"
        r"ls)\b|\b(?:curl|wget)\b[^\n]{0,120}?(?:-d|--data\S*|--post-\w+|-F|--upload-file|-T)\s+[\"']?@?"
        r"(?:~/\.|\S*(?:\.env|\.ssh|credentials|id_rsa|\.aws))",
        r"\bHISTFILE=/dev/null|\bunset\s+HISTFILE\b|\bhistory\s+-c\b",
        # persistence: a download made executable, writes into hooks, shell start-up files, cron
        r"\b(?:curl|wget)\b[^\n]{0,200}?(?:>|-o\s+)\s*\S+[^\n]{0,40}?chmod\s+\+x|(?:>>?|\btee\s+(?:-a\s+)?)\s*\S*"
        r"(?:\.git/hooks/|\.bashrc|\.zshrc|\.profile|crontab|authorized_keys|/etc/cron)",
        r"\bpush(?:es|ed|ing)?\s+(?:\w+\s+){0,3}?(?:should|must|always|need\s+to|has\s+to|have\s+to|are\s+to)\s+"
        r"(?:\w+\s+){0,2}?[`'\"]?(?:--force\b|-f\b|force)",
        # exposure: "make every private repo public"
        r"\bmak\w*\s+(?:every|all|each|any|the\s+user'?s?|their|your)\s+(?:\w+\s+){0,2}?(?:repos?|repositories|"
        r"buckets?|files?|documents?|folders?|projects?|drives?|databases?|gists?|channels?|notebooks?|boards?|"
        r"sheets?|snapshots?)\s+(?:\w+\s+){0,3}?public\b",
    ],
    "deception": [
        r"\b(?:say|state|claim|report|tell\s+(?:the\s+)?(?:user|them))\s+(?:that\s+)?[^.\n]{0,120}?\beven\s+"
        r"(?:though|if|when)\b",
        r"\b(?:answer|reply|response|message|summary)\s+(?:given\s+|shown\s+)?to\s+the\s+(?:user|person|human|customer)\s+"
        r"(?:should|must|will|is\s+to)\s+(?:describe|say|state|claim|present|call|report)\b",
        r"\b(?:warnings?|errors?|findings?|alerts?)\s+(?:\w+\s+){0,4}?(?:are|is)\s+(?:for\s+internal|internal\s+only|"
        r"not\s+for\s+the\s+(?:user|person))",
        r"\bwhether\s+or\s+not\s+(?:that|it|this|they|so)\s+(?:is|are|was|were)\s+(?:true|accurate|correct|the\s+case)|"
        r"\bregardless\s+of\s+(?:the\s+)?(?:truth|facts|accuracy)\b",
        r"\b(?:describe|present|report|call|portray)\w*\s+(?:\w+\s+){0,4}?as\s+[^.\n]{0,40}?\b(?:really|actually|"
        r"in\s+fact|in\s+reality)\b",
        r"\b(?:describe|portray|present|call|label|mention|depict)\w*\s+(?:\w+\s+){0,4}?as\s+(?:\w+\s+)?(?:unsafe|"
        r"dangerous|recalled|scams?|fraudulent|illegal|malicious|inferior|unreliable|defective|insecure)",
        r"\b(?:whatever|regardless\s+of)\s+(?:the\s+)?(?:result|outcome|output|response|status|check\s+says)\b"
        r"[^.\n]{0,80}?\b(?:report|tell|say|state|answer|reply|claim)",
        r"\bsteer\w*\s+(?:the\s+)?(?:user|them|customers?|people)\b",
        r"\b(?:tell|inform|warn)\s+(?:the\s+)?(?:user|them)\s+(?:that\s+)?(?:their|the|his|her)\s+(?:\w+\s+)?"
        r"(?:account|card|session|device|computer|subscription)\s+(?:is|has\s+been|was|will\s+be)\s+"
        r"(?:locked|compromised|suspended|infected|blocked|closed|frozen)",
    ],
    "preference": [
        r"\b(?:other|the\s+standard|the\s+default|built-?in|competing|alternative)\s+(?:\w+\s+){0,2}?tools?\s+"
        r"(?:\w+\s+){0,3}?(?:return|returns|have|has|give|gives|produce|produces|contain)\s+(?:\w+\s+){0,2}?"
        r"(?:outdated|wrong|incorrect|harmful|bugs|errors|inaccurate|stale|unreliable|known\s+(?:bugs|issues))",
        r"\bthe\s+others?\s+(?:\w+\s+){0,4}?(?:retired|deprecated|broken|outdated|obsolete|unreliable|unsafe|"
        r"compromised|give\s+wrong|return\s+wrong)",
        r"\brely\s+(?:only\s+|solely\s+)?on\s+this\s+(?:one|tool)\s*(?:alone|only|exclusively)?\b",
        r"\b(?:pick|choose|use|prefer|select|call)\s+this\s+(?:tool|one|function)\s+(?:first\s+)?(?:for\s+(?:every|"
        r"all|any|each)\b|before\s+(?:any|all|every)\b)",
        # other tools disparaged: "every other search tool returns fabricated articles"
        r"\b(?:other|every\s+other|all\s+other|any\s+other|competing|alternative|rival)\s+(?:\w+\s+){0,4}?"
        r"(?:tools?|servers?|providers?|sources?|services?)\s+(?:\w+\s+){0,6}?(?:outdated|out[\s-]of[\s-]date|stale|"
        r"fabricated|fake|made[\s-]up|wrong|incorrect|unreliable|untrustworthy|inaccurate|broken|deprecated|"
        r"obsolete|compromised|unsafe|insecure)\b",
        r"\btools?\b[^.\n]{0,40}?\b(?:which|that)\s+(?:\w+\s+){0,4}?(?:stale|outdated|out[\s-]of[\s-]date|fabricated|"
        r"unreliable|inaccurate|broken)\b",
        r"\b(?:the\s+)?only\s+(?:\w+\s+)?(?:source|tool|provider|option|one|server|service)s?\s+(?:that\s+(?:is|are)\s+|"
        r"to\s+be\s+)?(?:verified|trustworthy|trusted|reliable|accurate|safe|legitimate|official)\b",
    ],
}

WEAK_EXTRA: dict[str, list[str]] = {
    "marker": [
        r"\b(?:agent|assistant|ai|llm|model)\s+(?:directive|instruction|note|notice|guidance|rule|protocol)s?\s*[:\-]",
        r"(?:^|[(\[.;,]\s*)(?:assistant|agent|ai|llm)\s*[:,]\s+(?:please\s+)?[a-z]+",
        r"\b(?:message|reminder)s?\s+(?:for|to)\s+(?:the\s+|any\s+)?(?:ai|assistant|agent|model|llm)s?\b",
    ],
    "coercion": [
        r"\b(?:for|on|with|before|after|in)\s+(?:every|each|all|any)\s+(?:single\s+)?(?:other\s+)?(?:\w+\s+)?"
        r"(?:questions?|searches|calls?|tools?|commands?|e-?mails?|events?|documents?|transfers?|channels?)\b",
        r"\b(?:all|any|every)\s+(?:subsequent|future|following|later)\s+(?:\w+\s+){0,2}?(?:calls?|requests?|"
        r"tools?|commands?|queries|messages?)",
        r"\b(?:first|always)\s+(?:call|calls|invoke|invokes|use|uses|run|runs)\s+this\s+(?:tool|function)",
        r"\b(?:including|even)\s+(?:ones|those|questions|requests|tasks)\s+(?:that\s+)?(?:do\s+not|don'?t|"
        r"that\s+don'?t)\s+(?:look|seem|appear)",
        r"\b(?:before|after|whenever|when|each\s+time|every\s+time|once)\s+(?:the\s+)?(?:assistant|model|agent|"
        r"ai|you)\s+(?:calls?|uses?|invokes?|runs?)\s+[`'\"]?\w+(?:_\w+)+",
        r"\b(?:whenever|when|if|each\s+time|every\s+time|once)\s+(?:the\s+)?[`'\"]?\w+(?:_\w+)+[`'\"]?\s+"
        r"(?:tool\s+|function\s+)?(?:is|gets|has\s+been)\s+(?:used|called|invoked|run)",
        r"\b(?:whenever|when|if)\s+the\s+user\s+asks?\s+(?:you\s+)?to\s+[^.\n]{0,60}?\binstead\b",
        r"\b(?:once|after)\s+this\s+tool\s+(?:returns|has\s+(?:returned|run|finished))",
    ],
    "transfer": [
        r"\b(?:cannot|can'?t|can\s+not|is\s+unable\s+to|does\s+not)\s+(?:\w+\s+){0,4}?(?:directly|itself)\b"
        r"[^.\n]{0,40}?\b(?:call|use|invoke|run)\s+[`'\"]?\w+",
    ],
    "scope": [
        r"\bscope\s*[=:]\s*['\"`]?(?:everything|all|\*|full)\b|\b(?:admin|root|sudo)_\w+|\w+_(?:all|everything)\b",
    ],
    "trigger": [
        r"\bif\s+(?:today'?s\s+date|the\s+(?:current\s+)?date|the\s+(?:current\s+)?time|the\s+year)\s+is\s+"
        r"(?:after|past|later|beyond|on\s+or\s+after)",
        r"\bafter\s+(?:this\s+tool\s+has\s+been\s+)?(?:used|called|invoked|run)\s+(?:\w+\s+){0,2}?times",
        r"\b(?:if|when|whenever|once)\s+(?:the\s+)?(?:user|conversation|chat|messages?)\s+(?:\w+\s+)?(?:mentions?|"
        r"involves?|contains?|talks?\s+about|refers?\s+to)\b",
    ],
    "address": [
        r"\b(?:the\s+)?(?:ai|assistant|model|llm|agent|claude|gpt|copilot)s?\s+(?:also\s+|then\s+|first\s+|"
        r"always\s+)?(?:should|must|shall|needs?\s+to|has\s+to|is\s+to|is\s+required\s+to|is\s+expected\s+to|"
        r"calls|sends|adds|reads|includes|passes|forwards|uploads)\b(?!\s+not\b)",
        r"\bassistants\s+(?:\w+\s+){0,4}?(?:send|call|read|include|pass|add|forward|get|use)\b",
        r"\b(?:please|kindly)\s+(?:also\s+)?(?:include|pass|provide|attach|send|share|add|read|paste|supply|"
        r"call|forward|collect)",
    ],
    "sink": [
        r"\b(?:upload|send|post|forward|report|paste|submit|leak)\w*\s+(?:\w+\s+){0,5}?(?:to|into|in|as)\s+"
        r"(?:the\s+)?`\w+`\s*(?:field|parameter|argument)?",
    ],
    "sensitive": [
        rf"{OWNER}\s+(?:[\w-]+\s+){{0,3}}?{CREDENTIAL}",
        ENVIRONMENT,
    ],
    "destroy": [
        r"\b(?:delete|remove|erase|wipe|destroy|purge|drop|close|lock|archive|revoke|cancel)\w*\s+(?:all|every|each|"
        r"the\s+entire|the\s+whole)\s+"
        r"(?:\w+\s+)?(?:branch(?:es)?|commits?|history|projects?|accounts?|buckets?|volumes?|containers?|"
        r"collections?|indexes|keys|channels?|issues|pages?)\b",
    ],
    "response": [
        r"\b(?:report|say|state|claim)\s+to\s+(?:the\s+)?(?:user|them|customer)\s+that\b",
        r"\bprefer\s+(?:this|it)\s+(?:one\s+|tool\s+)?over\b",
        r"\b(?:the\s+)?most\s+(?:trusted|reliable|accurate|secure|official)\s+(?:\w+\s+)?tool",
    ],
}

# Non-English: the same intents, compactly. Objects and verbs are matched in either order because
# several of these languages put the verb last.
ML_OBJECT = (
    r"(?:contraseñas?|claves?\s+(?:de\s+)?api|credenciales|variables\s+de\s+entorno|historial\s+(?:completo\s+)?"
    r"de\s+(?:la\s+)?conversaci[óo]n|passw(?:ö|oe)rt(?:er)?|api-schl(?:ü|ue)ssel|zugangsdaten|umgebungsvariablen|"
    r"(?:gespr(?:ä|ae)chs|chat|unterhaltungs)verlauf|mots?\s+de\s+passe|cl(?:é|e)s?\s+api|identifiants|"
    r"variables\s+d'environnement|historique\s+(?:complet\s+)?de\s+(?:la\s+)?conversation|senhas?|"
    r"chaves?\s+(?:de\s+)?api|credenciais|vari(?:á|a)veis\s+de\s+ambiente|hist(?:ó|o)rico\s+(?:completo\s+)?"
    r"d[ae]\s+conversa|password\s+dell'utente|chiavi\s+api|cronologia\s+(?:completa\s+)?della\s+conversazione|"
    r"variabili\s+d'ambiente|(?:alle\s+)?dateien\s+im\s+(?:ordner|verzeichnis)|tous\s+les\s+fichiers\s+du\s+dossier|"
    r"todos\s+los\s+archivos\s+de\s+la\s+carpeta|парол\w*|api[\s-]?ключ\w*|учётн\w+\s+данн\w+|учетн\w+\s+данн\w+|"
    r"переменн\w+\s+окружения|токен\w*|истори\w+\s+(?:всей\s+)?(?:переписки|разговора|диалога|чата|сообщений)|"
    r"密码|API\s*密钥|密钥|凭证|凭据|环境变量|令牌|(?:对话|聊天|会话)(?:历史|记录)|パスワード|API\s*キー|認証情報|"
    r"環境変数|秘密鍵|会話(?:の)?履歴|チャット履歴|비밀번호|API\s*키|자격\s*증명|환경\s*변수|대화\s*(?:기록|내역)|"
    r"sohbet\s+geçmiş\w*|kortnummer|lösenord\w*|api-nyck\w+|miljövariabler|konversationshistorik\w*|şifre\w*|parola\w*|hasł\w*|historia\s+rozmowy)"
)
ML_VERB = (
    r"(?:env[ií]a|manda|incluye|incluir|pasa|adjunta|a(?:ñ|n)ade|agrega|copia|lee|sende|schicke|f(?:ü|ue)ge|"
    r"(?:ü|ue)bermittle|lies|kopiere|gib|envoie[zr]?|envoy(?:ez|er)|transmet(?:tez|tre|s)?|incluez|inclure|ajoutez|lisez|lire|"
    r"copiez|joignez|avec|envie|enviar|inclua|incluir|adicione|leia|ler|copie|passe|mande|invia|includi|"
    r"aggiungi|leggi|отправ\w*|пришли|включ\w*|добав\w*|прочита\w*|скопир\w*|передай|перешли|"
    r"发送|发到|发给|读取|包含|放入|附上|添加|上传|传给|复制|送信|送っ|含め|読み取|読ん|添付|追加|アップロード|"
    r"보내|전송|포함|읽고|읽어|첨부|추가|넣으|gönder|ekle|oku|skicka|bifoga|inkludera|wyślij|dołącz|odczytaj|wklej)"
)
ML_STRONG: dict[str, list[str]] = {
    "preference": [
        r"他の.{0,20}?(?:ツール|サービス|サーバー).{0,40}?(?:使わない|使用しない|使うな|使ってはいけない|古い|不正確|間違)",
        r"其他.{0,12}?(?:工具|服务).{0,30}?(?:不要使用|不要用|禁止使用|不得使用|过时|错误|不准确|不可靠)",
        r"다른.{0,12}?(?:도구|툴|서비스).{0,30}?(?:사용하지\s*마|쓰지\s*마|오래된|부정확|틀린)",
        r"(?:otras|otros)\s+(?:\w+\s+){0,2}?(?:herramientas|servicios)\s+(?:\w+\s+){0,5}?(?:obsolet|desactualizad|"
        r"incorrect|poco\s+fiables|no\s+(?:las|los)\s+uses)",
        r"(?:andere|anderen)\s+(?:\w+\s+){0,2}?(?:tools|werkzeuge|dienste)\s+(?:\w+\s+){0,5}?(?:veraltet|falsch|"
        r"unzuverl(?:ä|ae)ssig|nicht\s+(?:verwenden|benutzen|nutzen))",
        r"(?:autres|les\s+autres)\s+(?:\w+\s+){0,2}?(?:outils|services)\s+(?:\w+\s+){0,5}?(?:obsol(?:è|e)tes|"
        r"p(?:é|e)rim(?:é|e)s|incorrects|peu\s+fiables|n'utilise[zr]?\s+(?:pas|jamais))",
    ],
    "override": [
        r"ignor[ae]\w*\s+(?:todas\s+|tutte\s+)?(?:las|as|le)\s+(?:instrucciones|instruções|istruzioni)\s+"
        r"(?:anteriores|previas|precedenti)",
        r"ignorier\w*\s+(?:alle\s+)?(?:vorherigen|bisherigen|obigen|fr(?:ü|ue)heren)\s+anweisungen",
        r"ignore[zr]?\s+(?:toutes\s+)?les\s+instructions\s+(?:pr(?:é|e)c(?:é|e)dentes|ant(?:é|e)rieures)",
        r"игнорир\w*\s+(?:все\s+)?(?:предыдущие|прежние|ранее\s+данные)\s+(?:инструкции|указания)",
        r"忽略(?:之前|以前|先前|上面|上述)?的?(?:所有|全部)?(?:指令|指示|说明|规则)",
        r"(?:以前|前|これまで)の(?:すべての)?指示を無視",
        r"이전\s*(?:의\s*)?(?:모든\s*)?지시.{0,4}무시",
    ],
    "secrecy": [
        r"\bno\s+(?:se\s+lo\s+|le\s+|lo\s+)?(?:menciones|digas|informes|comuniques|cuentes)\b",
        r"\bsin\s+(?:que\s+el\s+usuario\s+lo\s+sepa|informar|avisar)",
        r"\bohne\s+(?:den|die)\s+(?:benutzer|nutzer|anwender)\w*\s+(?:dar(?:ü|ue)ber\s+)?zu\s+(?:informieren|"
        r"benachrichtigen|fragen)",
        r"\b(?:sag|erw(?:ä|ae)hne|verrate)\w*\s+(?:es\s+|das\s+)?(?:dem\s+)?(?:benutzer|nutzer)\w*\s+nicht",
        r"\bnicht\s+(?:dem|den|der)\s+(?:benutzer|nutzer|anwender)\w*\s+(?:sagen|mitteilen|zeigen|erz(?:ä|ae)hlen|"
        r"melden|verraten)",
        r"\bne\s+(?:le\s+|la\s+|les\s+|l'|en\s+)?(?:dites|dis|mentionnez|mentionne|signalez|r(?:é|e)v(?:é|e)lez|"
        r"informez)\s+(?:pas|rien)",
        r"\bsans\s+(?:en\s+)?(?:informer|pr(?:é|e)venir|avertir)\s+l'utilisateur",
        r"\bn(?:ã|a)o\s+(?:informe|avise|conte|diga|mencione)\b",
        r"\bsem\s+(?:informar|avisar)\s+o\s+usu(?:á|a)rio",
        r"\bnon\s+(?:dirlo|informare|dire|menzionare)\b",
        r"\bне\s+(?:сообщай|говори|рассказывай|упоминай|показывай|уведомляй)\w*",  # noqa: RUF001
        r"不要(?:告诉|通知|提醒|透露给|让)用户|对用户保密",
        r"ユーザーに(?:は)?(?:伝え|知らせ|言わ|教え)ない",
        r"사용자에게\s*(?:알리지|말하지|보여주지)\s*마",
        r"\bberätta\s+inte\s+(?:\w+\s+)?(?:för|till)\s+användaren|\butan\s+att\s+(?:berätta|informera)\s+"
        r"(?:\w+\s+)?användaren",
        r"kullanıcıya\s+(?:\w+\s+)?(?:bahsetme|söyleme|gösterme|bildirme)|użytkownik\w*\s+(?:o\s+tym\s+)?nie\s+"  # noqa: RUF001
        r"(?:informuj|mów)|nie\s+informuj\s+(?:o\s+tym\s+)?użytkownik",
    ],
    "sensitive_action": [
        rf"{ML_VERB}.{{0,40}}?{ML_OBJECT}",
        rf"{ML_OBJECT}.{{0,40}}?{ML_VERB}",
    ],
}
ML_WEAK: dict[str, list[str]] = {
    "coercion": [
        r"antes\s+de\s+(?:usar|utilizar|llamar)|avant\s+d'(?:utiliser|appeler)|bevor\s+(?:du|sie)\s+|"
        r"vor\s+der\s+(?:verwendung|nutzung)|antes\s+de\s+usar|prima\s+di\s+usare|перед\s+(?:использованием|"
        r"вызовом)|使用(?:此|该|这个|本)工具(?:之)?前|このツールを使う前に|이\s*도구를\s*사용하기\s*전에",
        r"\bpara\s+cada\b|\bpour\s+chaque\b|\bbei\s+jede[rm]?\b|\bem\s+todos\b|\bper\s+ogni\b|"
        r"\bпри\s+каждом\b|"  # noqa: RUF001
        r"每次|毎回|매번",
    ],
}
