// Package e164 reads, checks and formats telephone numbers in their E.164 form
// ("+31852087972", ITU-T E.164).
//
// It owns:
//
//   - Normalize: a dialled or displayed number ("085 208 79 72", "+31 (0)85 208 7972",
//     "0031852087972", "tel:+31852087972", a SIP URI's user part) to E.164;
//   - Valid: the strict check of the canonical form ^\+[1-9][0-9]{7,14}$;
//   - Format and Style: the display forms a customer can pick (display_format in the config):
//     national "085 208 7972", e164 "+31852087972", international "+31 85 208 7972".
//
// It does not own which numbers exist, who owns them or whether a number is in service
// (package pool), parsing SIP URIs (package sip passes the user part) or the script itself.
// It has no state: every function is safe for concurrent use.
//
// Accepted input. A number is an optional "+" followed by digits and visual separators:
// space, tab, U+00A0 NO-BREAK SPACE, U+202F NARROW NO-BREAK SPACE, '-', U+2011 NON-BREAKING
// HYPHEN, '.', '/', and one level of parentheses. After "+CC" or "00CC" a literal "(0)" is the
// national trunk prefix and is dropped. A number starting with "00" is international; one
// starting with a single "0" is national and gets the configured country code in place of
// the "0". Inputs longer than 64 bytes, with letters, control characters (CR, LF) or other
// symbols are refused; so are results with fewer than 8 or more than 15 digits.
//
// Caveats:
//
//   - A number with neither "+", "00" nor "0" in front ("31852087972", as some trunks send
//     it) is refused as ambiguous rather than guessed at.
//   - Reading "0..." as national by dropping the "0" is right for the Netherlands and most of
//     Europe, not for countries without a trunk prefix 0 (Italy keeps it, NANP dials 1).
//   - No numbering-plan check: "+31 12 345 6789" is well-formed but unassigned, and
//     "+31 (085) 208 7972" becomes "+310852087972" (the 0 in the parentheses is kept, since in
//     general it cannot be told apart from a significant 0).
//   - E.164 allows numbers shorter than 8 digits (a few small countries, Dutch 14xxx
//     government numbers); they are refused.
//   - Format groups digits only for +31 (Dutch area codes and 06 mobile, 0800/0900/0906/0909
//     service numbers). Other countries get "+CC rest" in international style and E.164 in
//     national style.
package e164
