"""Running teachers: dumping their outputs into a cache."""

from softlabels.teachers.dump import DumpConfig, DumpResult, TeacherSpec, dump, parse_teacher

__all__ = ["DumpConfig", "DumpResult", "TeacherSpec", "dump", "parse_teacher"]
