from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.events import MAX_FILES
from coordinator.shell import MAX_COMMAND, MAX_NODES, shell_writes


def writes(command: object) -> tuple[str, ...]:
    return shell_writes(command, limit=MAX_FILES)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        # The issue's own forms, as Claude Code and Codex sent them.
        ("sed -i s/a/b/ src/x.py", ["src/x.py"]),
        ("echo hi > src/y.py", ["src/y.py"]),
        ("ls | tee out.txt", ["out.txt"]),
        ("cp a.py b.py", ["b.py"]),
        ("mv old.py new.py", ["new.py", "old.py"]),
        ("rm src/z.py", ["src/z.py"]),
        ("git checkout -- src/a.py src/b.py", ["src/a.py", "src/b.py"]),
        # sed
        ("sed -i.bak 's/a/b/' x.py", ["x.py"]),
        ("sed --in-place -e 's/a/b/' -e 's/c/d/' x.py y.py", ["x.py", "y.py"]),
        ("sed --in-place=.orig --expression=s/a/b/ x.py", ["x.py"]),
        ("sed -Ei 's/a+/b/' x.py", ["x.py"]),
        ("sed -i '' 's/a/b/' x.py", ["x.py"]),  # macOS
        ("sed -i .bak 's/a/b/' x.py", ["x.py"]),  # macOS with a backup
        ("sed -i -f script.sed x.py", ["x.py"]),
        ("sed -i -- 's/a/b/' -weird.py", ["-weird.py"]),
        ("/usr/bin/sed -i s/a/b/ x.py", ["x.py"]),
        # redirections
        ("echo hi >> log.txt", ["log.txt"]),
        ("make 2> build.log", ["build.log"]),
        ("make &> build.log", ["build.log"]),
        ("make &>> build.log", ["build.log"]),
        ("echo x >| forced.txt", ["forced.txt"]),
        ("echo x >&out.txt", ["out.txt"]),
        ("> empty.txt", ["empty.txt"]),
        ("echo > f hi", ["f"]),
        ("cat <<EOF > conf.ini\n[a]\nb = 1\nEOF", ["conf.ini"]),
        ("ls > /tmp/out", ["/tmp/out"]),  # outside the project: the roots decide later
        ('echo x > "my file.txt"', ["my file.txt"]),
        ("echo x > 'q.txt'", ["q.txt"]),
        ("echo x > my\\ file.txt", ["my file.txt"]),
        ('echo x > "a"b', ["ab"]),
        # tee
        ("tee -a log a/b < in.txt", ["log", "a/b"]),
        ("echo x | sudo tee /etc/hosts > /dev/null", ["/etc/hosts"]),
        # cp, mv, install, ln
        ("cp a b dir", ["dir/a", "dir/b"]),
        ("cp -r src/ backup/", ["backup/src"]),
        ("cp -t dst a b/c", ["dst/a", "dst/c"]),
        ("cp --target-directory=dst a", ["dst/a"]),
        ("cp -T a b", ["b"]),
        ("cp a.py .", ["a.py"]),
        ("mv a.py src/", ["src/a.py", "a.py"]),
        ("mv -f a.py b.py lib", ["lib/a.py", "lib/b.py", "a.py", "b.py"]),
        ("install -m 644 build/a /usr/local/bin/a", ["/usr/local/bin/a"]),
        ("ln -sf ../x.py link.py", ["link.py"]),
        ("ln -s /opt/tool", ["tool"]),
        # rm, touch, truncate, dd
        ("rm -rf build dist/x", ["build", "dist/x"]),
        ("rm -f -- -x.py", ["-x.py"]),
        ("touch a b", ["a", "b"]),
        ("touch -r ref.txt -d yesterday new.txt", ["new.txt"]),
        ("truncate -s 0 log.txt", ["log.txt"]),
        ("dd if=/dev/zero of=disk.img bs=1M count=1", ["disk.img"]),
        # git
        ("git checkout HEAD~1 -- a.py", ["a.py"]),
        ("git checkout main a.py b.py", ["a.py", "b.py"]),
        ("git restore src/a.py", ["src/a.py"]),
        ("git restore --source=HEAD~2 --worktree a.py", ["a.py"]),
        ("git restore -s main -- a.py", ["a.py"]),
        ("git rm old.py", ["old.py"]),
        ("git mv a.py b.py", ["b.py", "a.py"]),
        ("git -C sub checkout main -- f.py", ["sub/f.py"]),
        ("git --no-pager -c core.x=y restore f.py", ["f.py"]),
        # lists, pipelines, subshells, substitutions, control flow
        ("npm test && echo ok > status.txt || rm status.txt", ["status.txt"]),
        ("a; b > one; c | tee two", ["one", "two"]),
        ("(cd a; rm b); rm c", ["a/b", "c"]),
        ("{ echo a; echo b; } > both.txt", ["both.txt"]),
        ("echo $(rm q)", ["q"]),
        ("diff <(sort a) <(sort b) > d.txt", ["d.txt"]),
        ("if [ -f a ]; then rm a; fi", ["a"]),
        ("for i in 1 2; do echo $i >> n.txt; done", ["n.txt"]),
        ("! rm gone", ["gone"]),
        ("x=$(cat f) && echo $x > y", ["y"]),
        # cd
        ("cd sub && sed -i s/a/b/ x.py", ["sub/x.py"]),
        ("cd sub; cd ../other && rm x", ["other/x"]),
        ("cd /srv/app && rm x", ["/srv/app/x"]),
        ("cd .. && rm x", ["../x"]),
        ("pushd lib && touch y && popd && touch z", ["lib/y"]),
        ("cd $HOME && rm x; rm /abs/c", ["/abs/c"]),
        ("cd - && rm x", []),
        ("if true; then cd x; fi; rm y", []),
        ("cd a && (cd b && rm c) && rm d", ["a/b/c", "a/d"]),
        ("cd a && echo $(cd b && rm c) && rm d", ["a/b/c", "a/d"]),
        (
            "cd sub && sed -i s/a/b/ x.py 2>/dev/null | tee -a 'o u' &> f",
            ["sub/x.py", "sub/o u", "sub/f"],
        ),
        # wrappers and child shells
        ("sudo -u root env A=1 timeout 5 rm -f z", ["z"]),
        ("time rm z", ["z"]),
        ("nohup nice -n 5 touch z", ["z"]),
        ("command rm z", ["z"]),
        ("FOO=1 BAR=2 rm z", ["z"]),
        ("bash -c 'echo hi > inner.txt'", ["inner.txt"]),
        ('bash -lc "cd pkg && touch t"; touch u', ["pkg/t", "u"]),
        ("sh -e -c 'rm a'", ["a"]),
        ("bash -o pipefail -c 'rm a | cat'", ["a"]),
        # normalised, each once, /dev and fd duplications skipped
        ("rm ./a//b/../c.py && touch a/c.py", ["a/c.py"]),
        ("echo x >&2; ls 2>&1; make 2>/dev/null >/dev/stderr", []),
        ("echo x > /dev/tty", []),
    ],
)
def test_clear_writes_are_named(command: str, expected: list[str]) -> None:
    assert writes(command) == tuple(expected)


@pytest.mark.parametrize(
    "command",
    [
        # Read-only: they claim nothing, so they are never blocked.
        "ls",
        "ls -la src",
        "pwd",
        "cat a | wc -l",
        "cat src/a.py",
        "head -50 src/a.py",
        "tail -f log.txt",
        "grep -r foo src > /dev/null",
        "grep -rn 'def main' --include='*.py' .",
        "rg -n TODO src",
        "find . -name '*.py' -newer setup.cfg",
        "git status",
        "git diff --stat",
        "git log --oneline -20",
        "git show HEAD:src/a.py",
        "git branch -a",
        "git checkout main",
        "git checkout -b feature",
        "git checkout a.py",  # one operand: a branch or a file, unclear
        "git restore --staged a.py",
        "git rm --cached a.py",
        "git rm -n a.py",
        "git mv -n a b",
        "git blame src/a.py",
        "git fetch && git rebase origin/main",
        "python -m pytest tests -x -q",
        "pytest -k shell",
        "npm test",
        "npm run lint -- --fix=false",
        "cargo check",
        "go test ./...",
        "mvn -q test",
        "make -n",
        "echo hello",
        "printf '%s\\n' a b",
        "wc -l src/*.py",
        "du -sh .",
        "df -h",
        "env",
        "which python",
        "command -v rm",
        "type rm",
        "stat a.py",
        "file a.py",
        "sed -n '1,20p' a.py",
        "sed 's/a/b/' a.py",
        "sed -e 's/a/b/' a.py | less",
        "awk '{print $1}' a.txt",
        "sort a.txt | uniq -c",
        "diff a.py b.py",
        "jq . data.json",
        "curl -s http://127.0.0.1:8080/health",
        "docker ps",
        "ps aux | grep python",
        "echo $PATH",
        "test -f a.py && echo yes",
        "[[ -d src ]] || echo no",
        "for f in *.py; do echo $f; done",
        "while read l; do echo $l; done < in.txt",
        "cat <<EOF\nhello > not-a-file\nEOF",
        "echo 'rm -rf everything > x'",
        "tree -L 2",
        "realpath a.py",
        "xargs -n1 echo < list.txt",
        # Writes that cannot be read from the command: nothing claimed.
        "python - <<EOF\nopen('p', 'w').write('x')\nEOF",
        "python -c \"open('p', 'w').write('x')\"",
        "node -e \"require('fs').writeFileSync('p', 'x')\"",
        "perl -pi -e 's/a/b/' x.py",
        "find . -name '*.pyc' -delete",
        "find . -name '*.pyc' | xargs rm",
        "rm *.pyc",
        "rm $TARGET",
        'rm "$TARGET"',
        "rm ~/notes.txt",
        "rm src/{a,b}.py",
        'echo x > "$(date).log"',
        "echo x > $OUT",
        "cp $FLAGS a b",
        "sed -i $EXPR a.py",
        "git --work-tree=/elsewhere checkout -- a.py",
        "patch -p1 < fix.diff",
        "git stash && git stash pop",
        "git reset --hard HEAD",
        "echo 'unterminated",
        "if then fi (",
        "",
        "   ",
    ],
)
def test_read_only_and_unclear_commands_claim_nothing(command: str) -> None:
    assert writes(command) == ()


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["bash", "-lc", "sed -i s/a/b/ src/x.py"], ["src/x.py"]),  # older Codex shells
        (["sed", "-i", "s/a/b/", "my file.py"], ["my file.py"]),  # an argv: no shell parsing
        (["rm", "*.py"], ["*.py"]),  # no shell: the star is the name
        (["ls", "-la"], []),
        (["bash", "script.sh"], []),
        ([], []),
        (["rm", 3], []),
        (None, []),
        ({"command": "rm a"}, []),
    ],
)
def test_argv_commands(command: object, expected: list[str]) -> None:
    assert writes(command) == tuple(expected)


def test_many_paths_are_capped_in_order() -> None:
    command = "touch " + " ".join(f"f{i}" for i in range(250))
    assert writes(command) == tuple(f"f{i}" for i in range(MAX_FILES))
    assert shell_writes(command, limit=3) == ("f0", "f1", "f2")


def test_an_oversized_command_claims_nothing() -> None:
    padding = "#" + "x" * MAX_COMMAND
    assert writes(f"rm a\n{padding}") == ()
    assert writes(["rm", "a", "x" * MAX_COMMAND]) == ()
    assert writes(f"rm a\n{padding[: MAX_COMMAND // 2]}") == ("a",)


def test_a_long_list_is_followed_to_its_end() -> None:
    # tree-sitter nests ``a && b && …`` one level per command: the walk is iterative.
    assert writes(" && ".join(["true"] * 450) + " && rm last") == ("last",)


def test_a_command_of_too_many_parts_claims_nothing() -> None:
    assert MAX_NODES < 4 * 1000
    assert writes("rm a; " * 1000) == ()
    assert writes("cp " + "a " * MAX_NODES + "dir") == ()
    assert writes("rm a; " * 100) == ("a",)


def test_nested_shells_are_bounded() -> None:
    command = "rm a"
    for _ in range(12):
        command = "bash -c " + "'" + command.replace("'", "'\\''") + "'"
    assert writes(command) == ()
    assert writes("bash -c 'bash -c \"rm a\"'") == ("a",)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("rm sedcp-i>&|;()$'\"\\{}*~\n abtx/.")), max_size=80))
def test_any_text_gives_a_bounded_tuple_of_strings(command: str) -> None:
    found = writes(command)
    assert len(found) <= MAX_FILES
    assert all(isinstance(path, str) and path and path != "." for path in found)
