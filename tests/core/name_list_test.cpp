// Operators' comma-separated name lists (--cluster-scope-writers, --trusted-creators).
#include "core/name_list.h"

#include <gtest/gtest.h>

namespace kcache::core {
namespace {

TEST(NameList, ParsesTrimmedItemsAndIgnoresEmptyOnes) {
  const NameList list = NameList::parse(" team-a,, kubeflow ,");
  EXPECT_FALSE(list.empty());
  EXPECT_FALSE(list.allowsEveryName());
  EXPECT_TRUE(list.contains("team-a"));
  EXPECT_TRUE(list.contains("kubeflow"));
  EXPECT_FALSE(list.contains("team"));
  EXPECT_FALSE(list.contains(""));
  EXPECT_EQ(list.describe(), "kubeflow,team-a");
}

TEST(NameList, EmptyTextIsTheEmptyList) {
  for (const char* text : {"", " ", ",", " , "}) {
    const NameList list = NameList::parse(text);
    EXPECT_TRUE(list.empty()) << text;
    EXPECT_FALSE(list.contains("team-a")) << text;
  }
}

TEST(NameList, AStarStandsForEveryName) {
  const NameList list = NameList::parse("team-a, *");
  EXPECT_TRUE(list.allowsEveryName());
  EXPECT_TRUE(list.contains("anything"));
  EXPECT_EQ(list.describe(), "*");
}

}  // namespace
}  // namespace kcache::core
