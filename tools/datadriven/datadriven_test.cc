#include "datadriven/datadriven.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace mq::datadriven {
namespace {

TEST(DatadrivenCommandLine, ParsesBareKeyValueListAndQuotedArguments) {
  auto parsed = parse_command_line("add-nodes 3 voters=(1, 2,3) prevote=true empty=() "
                                   "msg=\"a b\\\"c\"");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed->first, "add-nodes");
  const std::vector<CmdArg> want = {
      {"3", {}},
      {"voters", {"1", "2", "3"}},
      {"prevote", {"true"}},
      {"empty", {}},
      {"msg", {"a b\"c"}},
  };
  EXPECT_EQ(parsed->second, want);
}

TEST(DatadrivenCommandLine, MalformedArgumentsAreErrorsNotCrashes) {
  for (const char* bad : {"cmd a=(1,2", "cmd a=(1,(2))", "cmd a=(1,,2)", "cmd =5", "cmd a=",
                          "cmd a=\"open", "cmd a=b)c", "cmd a(b", "c=md x", "   "}) {
    auto parsed = parse_command_line(bad);
    EXPECT_FALSE(parsed.has_value()) << bad;
  }
}

TEST(DatadrivenParse, BlocksCommentsInputAndEmptyOutputs) {
  const std::string text =
      "# a comment\n"
      "\n"
      "first 1 x=2\n"
      "input line 1\n"
      "input line 2\n"
      "----\n"
      "out 1\n"
      "out 2\n"
      "\n"
      "# another\n"
      "second\n"
      "----\n"
      "\n"
      "third\n"
      "----\n";
  auto script = parse(text, "t.txt");
  ASSERT_TRUE(script.has_value()) << script.error().to_string();
  ASSERT_EQ(script->blocks.size(), 3u);
  const TestData& first = script->blocks[0];
  EXPECT_EQ(first.pos(), "t.txt:3");
  EXPECT_EQ(first.command, "first");
  EXPECT_EQ(first.input, "input line 1\ninput line 2");
  EXPECT_EQ(first.expected, "out 1\nout 2\n");
  EXPECT_EQ(first.arg_uint("x").value(), 2u);
  EXPECT_TRUE(first.has_arg("1"));
  EXPECT_EQ(script->blocks[1].line, 11);
  EXPECT_EQ(script->blocks[1].expected, "");
  EXPECT_EQ(script->blocks[2].expected, "");
}

TEST(DatadrivenParse, DoubleSeparatorOutputKeepsBlankLines) {
  const std::string text =
      "cmd\n"
      "----\n"
      "----\n"
      "a\n"
      "\n"
      "b\n"
      "----\n"
      "----\n"
      "\n"
      "next\n"
      "----\n"
      "ok\n";
  auto script = parse(text, "d.txt");
  ASSERT_TRUE(script.has_value()) << script.error().to_string();
  ASSERT_EQ(script->blocks.size(), 2u);
  EXPECT_EQ(script->blocks[0].expected, "a\n\nb\n");
  EXPECT_EQ(script->blocks[1].expected, "ok\n");
}

TEST(DatadrivenParse, ContinuationLinesJoinTheCommand) {
  auto script = parse("cmd a=1 \\\n  b=2\n----\n", "c.txt");
  ASSERT_TRUE(script.has_value()) << script.error().to_string();
  ASSERT_EQ(script->blocks.size(), 1u);
  EXPECT_EQ(script->blocks[0].arg_uint("b").value(), 2u);
}

struct BadScript {
  const char* text;
  const char* want_in_error;
};

TEST(DatadrivenParse, MalformedScriptsGiveAClearErrorWithFileAndLine) {
  const BadScript cases[] = {
      {"cmd\nno separator\n", "m.txt:1: command 'cmd' has no '----'"},
      {"----\nout\n", "m.txt:1: '----' without a command"},
      {"cmd\n----\n----\nnever closed\n----\n", "m.txt:3: output opened with '----' twice"},
      {"cmd\n----\n----\nx\n----\n----\ntrailing\n", "m.txt:7: expected a blank line"},
      {"a\n----\nx\nb\n----\ny\n", "m.txt:5: '----' inside an output"},
      {"cmd key=(1,2\n----\n", "m.txt:1: argument 'key': unbalanced '('"},
  };
  for (const BadScript& bad : cases) {
    auto script = parse(bad.text, "m.txt");
    ASSERT_FALSE(script.has_value()) << bad.text;
    EXPECT_NE(script.error().message().find(bad.want_in_error), std::string::npos)
        << "error: " << script.error().message() << "\nwant: " << bad.want_in_error;
  }
  auto nul = parse(std::string_view("cmd\0\n----\n", 10), "n.txt");
  ASSERT_FALSE(nul.has_value());
  EXPECT_NE(nul.error().message().find("NUL"), std::string::npos);
}

TEST(DatadrivenParse, TypedArgumentErrorsNameThePosition) {
  auto script = parse("\ncmd n=abc b=maybe list=(1,x)\n----\n", "a.txt");
  ASSERT_TRUE(script.has_value());
  const TestData& block = script->blocks[0];
  EXPECT_NE(block.arg_uint("n").error().message().find("a.txt:2: argument n"), std::string::npos);
  EXPECT_FALSE(block.arg_bool("b").has_value());
  EXPECT_FALSE(block.arg_uints("list").has_value());
  EXPECT_NE(block.arg_string("missing").error().message().find("missing argument"),
            std::string::npos);
  EXPECT_FALSE(block.arg_uint("99999999999999999999").has_value());
}

TEST(DatadrivenRender, ChoosesDoubleSeparatorOnlyWhenNeeded) {
  EXPECT_EQ(render_output(""), "");
  EXPECT_EQ(render_output("a\nb"), "a\nb\n");
  EXPECT_EQ(render_output("a\n\nb\n\n\n"), "----\na\n\nb\n----\n----\n");
  EXPECT_EQ(render_output("a\n----\n"), "----\na\n----\n----\n----\n");
}

TEST(DatadrivenRewrite, ReplacesOnlyOutputsAndKeepsEverythingElse) {
  const std::string text =
      "# header comment\n"
      "\n"
      "one\n"
      "in\n"
      "----\n"
      "old\n"
      "\n"
      "\n"
      "# between\n"
      "two\n"
      "----\n"
      "----\n"
      "x\n"
      "\n"
      "y\n"
      "----\n"
      "----\n"
      "\n"
      "three\n"
      "----\n"
      "# trailing comment\n";
  auto script = parse(text, "r.txt");
  ASSERT_TRUE(script.has_value()) << script.error().to_string();
  ASSERT_EQ(script->blocks.size(), 3u);
  EXPECT_EQ(script->blocks[2].expected, "# trailing comment\n");  // it is output, not a comment
  const std::string rewritten = rewrite(*script, {"new 1\nnew 2\n", "single", "a\n\nb"});
  EXPECT_EQ(rewritten,
            "# header comment\n"
            "\n"
            "one\n"
            "in\n"
            "----\n"
            "new 1\n"
            "new 2\n"
            "\n"
            "\n"
            "# between\n"
            "two\n"
            "----\n"
            "single\n"
            "\n"
            "three\n"
            "----\n"
            "----\n"
            "a\n"
            "\n"
            "b\n"
            "----\n"
            "----\n");
  // Rewriting with the actual outputs equal to the expected ones is the identity.
  std::vector<std::string> same;
  for (const auto& block : script->blocks) same.push_back(block.expected);
  EXPECT_EQ(rewrite(*script, same), text);
  // And the rewritten script parses back to the new outputs.
  auto reparsed = parse(rewritten, "r.txt");
  ASSERT_TRUE(reparsed.has_value()) << reparsed.error().to_string();
  EXPECT_EQ(reparsed->blocks[2].expected, "a\n\nb\n");
}

TEST(DatadrivenDiff, ShowsRemovedAndAddedLinesWithContext) {
  const std::string diff = line_diff("a\nb\nc\nd\ne\nf\ng\nh\n", "a\nb\nc\nd\nX\nf\ng\nh\n");
  EXPECT_EQ(diff, "  ...\n  b\n  c\n  d\n- e\n+ X\n  f\n  g\n  h\n");
  EXPECT_EQ(line_diff("", "new\n"), "+ new\n");
}

class DatadrivenRunFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "datadriven_run_" + std::to_string(::getpid()) + ".txt";
  }
  void TearDown() override { std::remove(path_.c_str()); }
  void write(const std::string& text) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << text;
  }
  std::string read() {
    std::ifstream in(path_, std::ios::binary);
    std::ostringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
  }
  std::string path_;
};

// Echoes the command's upper-cased name plus its input.
std::string echo_handler(const TestData& block) {
  std::string out = block.command;
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!block.input.empty()) out += "\n" + block.input;
  return out;
}

TEST_F(DatadrivenRunFileTest, PassingFileReportsNoFailures) {
  write("abc\n----\nABC\n\nxy\nline\n----\nXY\nline\n");
  auto report = run_file(path_, echo_handler, {});
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_EQ(report->blocks, 2u);
  EXPECT_EQ(report->failures, 0u);
  EXPECT_EQ(report->text, "");
}

TEST_F(DatadrivenRunFileTest, MismatchReportsPositionAndDiffAndRewriteFixesIt) {
  write("# c\nabc\n----\nwrong\n\nxy\n----\nXY\n");
  auto report = run_file(path_, echo_handler, {});
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->failures, 1u);
  EXPECT_NE(report->text.find(path_ + ":2: output of 'abc' differs"), std::string::npos)
      << report->text;
  EXPECT_NE(report->text.find("- wrong\n+ ABC\n"), std::string::npos) << report->text;
  EXPECT_EQ(read(), "# c\nabc\n----\nwrong\n\nxy\n----\nXY\n");  // not rewritten

  RunOptions rewrite_options;
  rewrite_options.rewrite = true;
  auto rewritten = run_file(path_, echo_handler, rewrite_options);
  ASSERT_TRUE(rewritten.has_value());
  EXPECT_TRUE(rewritten->rewritten);
  EXPECT_EQ(read(), "# c\nabc\n----\nABC\n\nxy\n----\nXY\n");
  auto again = run_file(path_, echo_handler, {});
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->failures, 0u);
}

TEST_F(DatadrivenRunFileTest, MissingFileAndMalformedFileAreErrors) {
  auto missing = run_file(path_ + ".absent", echo_handler, {});
  ASSERT_FALSE(missing.has_value());
  write("cmd\n");
  auto malformed = run_file(path_, echo_handler, {});
  ASSERT_FALSE(malformed.has_value());
  EXPECT_NE(malformed.error().message().find(":1: command 'cmd' has no '----'"),
            std::string::npos);
}

}  // namespace
}  // namespace mq::datadriven
