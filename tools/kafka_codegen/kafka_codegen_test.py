"""Unit tests of the Kafka codec generator (run by ctest as kafka_codegen_test)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emit_struct import StructEmitter  # noqa: E402
from schema import Message, SchemaError, Versions, pascal_from_upper_snake, snake_case  # noqa: E402

SCHEMA = """{
 "apiKey": 99, "type": "request", "name": "DemoRequest",
 "validVersions": "0-3", "flexibleVersions": "2+",
 "fields": [
  {"name": "Names", "type": "[]string", "versions": "0+", "nullableVersions": "1+"},
  {"name": "Level", "type": "float64", "versions": "1+", "default": "1.5"},
  {"name": "Limit", "type": "int32", "versions": "0+", "default": "0x7fffffff"},
  {"name": "Hint", "type": "string", "versions": "2+", "taggedVersions": "2+", "tag": 3,
   "nullableVersions": "2+", "default": "null"},
  {"name": "Parts", "type": "[]Part", "versions": "0+", "fields": [
    {"name": "Id", "type": "uuid", "versions": "0+"},
    {"name": "Leader", "type": "Leader", "versions": "3+", "taggedVersions": "3+", "tag": 0}
  ]}
 ],
 "commonStructs": [
  {"name": "Leader", "versions": "0+", "fields": [
    {"name": "LeaderId", "type": "int32", "versions": "0+", "default": "-1"}
  ]}
 ]
}"""


class VersionsTest(unittest.TestCase):
    def test_ranges(self):
        self.assertEqual(Versions("3+").cond(), "ver >= 3")
        self.assertEqual(Versions("0+").cond(), "true")
        self.assertEqual(Versions("1-4").cond(), "ver >= 1 && ver <= 4")
        self.assertEqual(Versions("0").cond(), "ver <= 0")
        self.assertEqual(Versions("none").cond(), "false")
        self.assertTrue(Versions("2-5").contains(5))
        self.assertFalse(Versions("2-5").contains(6))
        self.assertFalse(Versions("none").contains(0))
        self.assertEqual(Versions("2+").intersect(Versions("0-3")).text, "2-3")


class NamesTest(unittest.TestCase):
    def test_names(self):
        self.assertEqual(snake_case("ThrottleTimeMs"), "throttle_time_ms")
        self.assertEqual(snake_case("ZkMigrationReady"), "zk_migration_ready")
        self.assertEqual(snake_case("commitTimestamp"), "commit_timestamp")
        self.assertEqual(snake_case("Delete"), "delete_field")
        self.assertEqual(pascal_from_upper_snake("NOT_LEADER_OR_FOLLOWER"), "NotLeaderOrFollower")


class EmitTest(unittest.TestCase):
    def setUp(self):
        self.m = Message("Demo.json", text=SCHEMA)

    def test_structs_are_ordered_children_first(self):
        self.assertEqual([s.name for s in self.m.structs], ["Leader", "Part", "DemoRequest"])

    def test_types_and_defaults(self):
        e = StructEmitter(self.m)
        decl = "\n".join(e.declaration(self.m.top, 0, []))
        self.assertIn("std::optional<std::vector<std::string>> names = std::vector<std::string>{};", decl)
        self.assertIn("double level = 1.5;", decl)
        self.assertIn("std::int32_t limit = 2147483647;", decl)
        self.assertIn("std::optional<std::string> hint = std::nullopt;", decl)

    def test_tagged_fields_go_to_the_tagged_section(self):
        e = StructEmitter(self.m)
        code = "\n".join(e.definitions(self.m.top))
        self.assertIn("case 3:", code)
        self.assertIn("out.write_uvarint(3);", code)
        self.assertIn("unknown tagged fields are skipped", code)
        # Array counts are bounded by the element's minimum size before allocation.
        self.assertIn("read_array_length(flex, Part::min_wire_size(ver), &count)", code)

    def test_tagged_field_without_tag_is_refused(self):
        bad = SCHEMA.replace('"tag": 3,', "")
        with self.assertRaises(SchemaError):
            Message("Bad.json", text=bad)

    def test_unknown_struct_type_is_refused(self):
        bad = SCHEMA.replace('"type": "Leader"', '"type": "Missing"')
        with self.assertRaises(SchemaError):
            Message("Bad.json", text=bad)


if __name__ == "__main__":
    unittest.main()
