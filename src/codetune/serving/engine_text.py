"""One request's generated tokens -> the text its client sees, a delta at a time, never taken back.

What is shown is final, so the stream holds back what the next tokens may still change:

* bytes of a character split across tokens (the decoded text ends in U+FFFD), until it is whole;
* the trimmed whitespace run that token healing reproduces (`codetune.serving.healing`): never shown;
* a tail that may be the start of a stop string, until it is not (a match cuts the text before it);
* with the function-end rule (`codetune.stopping`): for Python, trailing whitespace (the cut drops the
  blank lines before the line that ends the function); for brace languages, the current line from its
  first `}` (whether that brace closes the function can depend on the rest of its line).

Decoding is incremental: each token decodes a short window from the last point where the text was whole
(decoding a window, not a token alone, keeps tokenizers that join tokens with spaces right).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from codetune import stopping

log = logging.getLogger(__name__)


class TextStream:
    """The text state of one request.

    Args:
        tokenizer: decodes token ids (special tokens are dropped from the text).
        prompt: the prompt as the client sent it (the function-end rule reads it).
        heal: the trimmed run the first tokens reproduce ("" when nothing was trimmed).
        stop: stop strings; the text ends before the first occurrence of any.
        language: the function-end rule's language, or None for no such rule.
        watch: the `decoding.StopWatch` of that language (says which tokens can end the function).
        line_blank: the watch's state at the prompt the model reads.
    """

    def __init__(
        self,
        tokenizer: Any,
        prompt: str,
        heal: str,
        stop: Sequence[str],
        language: str | None,
        watch: Any,
        line_blank: bool,
    ) -> None:
        self.tokenizer, self.prompt, self.heal = tokenizer, prompt, heal
        self.stop = [s for s in stop if s]
        self.language, self.watch, self.line_blank = language, watch, line_blank
        self.ids: list[int] = []
        self.text = ""  # the decoded text of `ids` (whole characters), the healed run included
        self.sent = 0  # characters of the visible text already delivered
        self.stopped_by: str | None = None  # "stop_string" | "function_end" once the completion ended at one
        self.stop_word = ""  # the stop string that matched
        self._prefix = self._read = 0  # decode windows: ids[_prefix:_read] decoded last time

    # ------------------------------------------------------------------ healing

    def heal_rest(self) -> str:
        """What is left of the trimmed run to reproduce ("" once it is written or given up)."""
        if self.heal and self.heal.startswith(self.text) and len(self.text) < len(self.heal):
            return self.heal[len(self.text) :]
        return ""

    def give_up_healing(self) -> None:
        """No token can continue the run: the completion is then everything generated."""
        log.warning("token healing found no token for %r; generating from the trimmed prompt", self.heal_rest())
        self.heal = ""

    def visible(self) -> str:
        """The completion so far, the reproduced run excluded."""
        if not self.heal:
            return self.text
        if self.text.startswith(self.heal):
            return self.text[len(self.heal) :]
        return "" if self.heal.startswith(self.text) else self.text

    # ------------------------------------------------------------------ tokens in, text out

    def push(self, token: int) -> tuple[str, bool]:
        """Append a generated token: (the text now safe to show, whether the completion ended here, at a
        stop string or the end of the function)."""
        self.ids.append(token)
        self.text += self._decode_new()
        check = self.watch is not None and self.watch.needs_check(self, token)  # updates line_blank
        vis = self.visible()
        end = self._stop_string_end(vis)
        if check and stopping.is_complete(self.language, self.prompt, vis):
            cut = stopping.truncate(self.language, self.prompt, vis)
            cut = cut if cut.strip() else ""  # an empty body: nothing to insert (not the rule's lone "\n")
            if end is None or len(cut) < len(end):
                end, self.stopped_by, self.stop_word = cut, "function_end", ""
        if end is not None:
            return self._deliver(vis, end), True
        upto = max(self.sent, len(vis) - self._held(vis))
        return self._deliver(vis, vis[:upto]), False

    def flush(self) -> tuple[str, bool]:
        """No token follows (EOS, the token cap): (the rest of the text, whether a stop string cut it)."""
        vis_was = self.visible()
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        vis = self.visible()
        if not vis.startswith(vis_was[: self.sent]):  # the whole decode disagrees with the windows
            vis = vis_was
        end = self._stop_string_end(vis)
        return self._deliver(vis, vis if end is None else end), end is not None

    def _deliver(self, vis: str, upto: str) -> str:
        """The text from what was sent up to `upto` (the completion up to some point, or its final form)."""
        if not upto.startswith(vis[: self.sent]):
            # Only a cut that rewrites text already shown gets here (the holds prevent it); show nothing more.
            log.warning("completion cut before text already sent; keeping what was sent")
            return ""
        delta = upto[self.sent :]
        self.sent = max(self.sent, len(upto))
        return delta

    def _decode_new(self) -> str:
        """The text the newest token completes ("" while a character is still split across tokens)."""
        before = self.tokenizer.decode(self.ids[self._prefix : self._read], skip_special_tokens=True)
        after = self.tokenizer.decode(self.ids[self._prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.ids)
            return after[len(before) :]
        return ""

    # ------------------------------------------------------------------ stop strings and holds

    def _stop_string_end(self, vis: str) -> str | None:
        """The visible text cut before the first stop string in it, or None. A match cannot start inside
        the text already sent: every tail that could start one was held back."""
        first, word = None, ""
        for s in self.stop:
            i = vis.find(s, self.sent)
            if i >= 0 and (first is None or i < first):
                first, word = i, s
        if first is None:
            return None
        self.stopped_by, self.stop_word = "stop_string", word
        return vis[:first]

    def _held(self, vis: str) -> int:
        """How many characters at the end of `vis` may still change (see the module's note)."""
        hold = 0
        lo = self.sent
        for s in self.stop:  # the longest tail that is a proper prefix of a stop string
            i = vis.find(s[0], max(lo, len(vis) - len(s) + 1))
            while i >= 0:
                if s.startswith(vis[i:]):
                    hold = max(hold, len(vis) - i)
                    break
                i = vis.find(s[0], i + 1)
        if self.watch is not None and self.watch.kind == "indent":
            hold = max(hold, len(vis) - len(vis.rstrip()))
        elif self.watch is not None and self.watch.kind == "braces":
            brace = vis.find("}", max(lo, vis.rfind("\n") + 1))
            if brace >= 0:
                hold = max(hold, len(vis) - brace)
        return min(hold, len(vis) - lo)
